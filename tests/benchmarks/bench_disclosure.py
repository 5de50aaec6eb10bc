"""What two-phase disclosure costs (or saves) on a caseworker's inbox, in one run.

    .venv/bin/python -m tests.benchmarks.bench_disclosure

One app on a temporary SQLite instance (tmpfs when there is one) holds ``REFERRALS``
requested referrals routed to norrmalm, every personal field filled.  Its caseworker lists
the inbox (``GET /api/v1/referrals?limit=REFERRALS``) under each policy, switched on the
running app between rounds:

  A. ``on_accept``: decision views — the personal fields are not opened at all;
  B. ``on_receipt``: full views — every referral's data key unwrapped, eight fields opened.

Rounds alternate A and B (ABBA...) so both see the same machine noise; the figure is the
median over rounds of the time per listed referral.  Each variant is checked first (A shows
no name, B every name).  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db import migrate
from referrals.domain.codes import DisclosurePolicy
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from tests.api.helpers import personal_number
from tests.benchmarks.report import say

REFERRALS = 100
ROUNDS = 30  # per variant, after one warm-up round each


def body(i: int) -> dict[str, Any]:
    return {
        "subject": {
            "name": f"Påhittad Person {i}",
            "personal_number": personal_number(
                2010, 1 + i % 12, 1 + i % 28, f"{200 + i % 700:03d}"
            ),
            "phone": "070-000 00 00",
            "district": "norrmalm",
        },
        "guardian": {"name": "Påhittad Förälder", "phone": "070-111 11 11"},
        "categories": ["drugs"],
        "priority": "normal",
        "legal_basis": "duty_to_report",
        "place_met": "Påhittad plats",
        "narrative": "Påhittad berättelse " * 20,
        "submit": True,
    }


def bearer(instance: Path, role: Role, unit: str) -> dict[str, str]:
    key = devissuer.load_or_create_key(instance)
    token = devissuer.mint(key, role=role, unit=unit, audience="referrals-api")
    return {"Authorization": f"Bearer {token}"}


def one_round(client: FlaskClient, headers: dict[str, str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get("/api/v1/referrals", query_string={"limit": REFERRALS}, headers=headers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["items"]) == REFERRALS
    return wall / REFERRALS, cpu / REFERRALS


def report(clock: str, a_runs: list[float], b_runs: list[float]) -> None:
    a, b = statistics.median(a_runs) * 1e6, statistics.median(b_runs) * 1e6
    say(f"{clock}, median over rounds, µs per listed referral:")
    for label, runs, median in (("A on_accept", a_runs, a), ("B on_receipt", b_runs, b)):
        q1, _, q3 = (q * 1e6 for q in statistics.quantiles(runs, n=4))
        say(f"  {label:<14} {median:9.1f}   (interquartile {q1:.1f} to {q3:.1f})")
    say(f"  difference A-B {a - b:+9.1f}   ratio A/B {a / b:.3f} ({(a / b - 1) * 100:+.1f} %)")
    paired = [x / y for x, y in zip(a_runs, b_runs, strict=True)]
    q1, q2, q3 = statistics.quantiles(paired, n=4)
    say(f"  paired per-round ratio A/B: median {q2:.3f}, interquartile {q1:.3f} to {q3:.3f}")


def main() -> None:
    started = time.perf_counter()
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() else None
    where = "tmpfs (/dev/shm)" if scratch else "the default temporary folder"
    with tempfile.TemporaryDirectory(prefix="referrals-bench-", dir=scratch) as directory:
        instance = Path(directory) / "instance"
        settings = Settings(instance_path=instance, log_level="WARNING")
        app = create_app(settings)
        runtime: Runtime = app.extensions["referrals"]
        migrate.upgrade(
            runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
        )
        with runtime.unit_of_work() as uow:
            seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
        client = app.test_client()
        worker = bearer(instance, Role.YOUTH_WORKER, "ungdomsjouren")
        caseworker = bearer(instance, Role.CASEWORKER, "norrmalm")
        for i in range(REFERRALS):
            made = client.post("/api/v1/referrals", json=body(i), headers=worker)
            assert made.status_code == 201, made.get_json()

        policies = {"A": DisclosurePolicy.ON_ACCEPT, "B": DisclosurePolicy.ON_RECEIPT}

        def use(name: str) -> None:
            runtime.settings = settings.with_overrides(disclosure_policy=policies[name])

        for name, shown in (("A", False), ("B", True)):
            use(name)
            listed = client.get(
                "/api/v1/referrals", query_string={"limit": REFERRALS}, headers=caseworker
            ).get_json()["items"]
            assert all(("name" in item["subject"]) is shown for item in listed), name
            one_round(client, caseworker)  # warm-up
        timings: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for i in range(ROUNDS):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                use(name)
                timings[name].append(one_round(client, caseworker))

        say(f"disclosure benchmark: Python {sys.version.split()[0]}, SQLite file on {where}")
        say(f"{ROUNDS} interleaved rounds per variant, each one inbox listing of {REFERRALS}")
        for clock, column in (("process CPU time", 1), ("wall-clock time", 0)):
            report(clock, [t[column] for t in timings["A"]], [t[column] for t in timings["B"]])
        runtime.database.dispose()
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
