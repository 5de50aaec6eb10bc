"""What retention erasure costs per referral, against a plain erasure, in one run.

    .venv/bin/python -m tests.benchmarks.bench_retention

On SQLite (and PostgreSQL when ``REFERRALS_TEST_POSTGRES_URL``'s server answers), one app
with a clock the script moves:

  A. the worker's retention round (``Worker.run_round`` after the periods ended): the scan
     for expired referrals, then per referral a locked re-check and the erase path, each
     with its audit event;
  B. the same number of referrals erased one by one through ``services.referrals.erase``
     with an operator's audit event, as ``referrals erase`` does: the baseline.

Rounds alternate A and B (ABBA...), each on fresh drafts made through the API; the figure
is the median time per erased referral.  Then the retention report is timed over what the
run left (erased skeletons, open drafts and holds).  Not a test: pytest does not collect
this file.  ``REFERRALS_BENCH_ROUNDS`` and ``REFERRALS_BENCH_PER_ROUND`` change the size.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from referrals import create_app
from referrals.audit.actions import AuditAction
from referrals.auth import devissuer
from referrals.auth.operator import identify
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.domain.codes import EraseReason
from referrals.runtime import OPERATOR, Runtime, operator_event
from referrals.services import referrals as referral_cases
from referrals.services import retention, seeding
from referrals.worker import Worker
from tests.api.helpers import referral_body
from tests.benchmarks.report import say
from tests.support.clock import FakeClock
from tests.support.databases import postgres_database, sqlite_database

ROUNDS = int(os.environ.get("REFERRALS_BENCH_ROUNDS", "8"))  # per variant
PER_ROUND = int(os.environ.get("REFERRALS_BENCH_PER_ROUND", "25"))


def drafts(client: FlaskClient, headers: dict[str, str], n: int) -> list[str]:
    made = []
    for _ in range(n):
        response = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
        if response.status_code != 201:
            raise SystemExit(f"create failed: {response.status_code}")
        made.append(response.get_json()["id"])
    return made


def by_worker(runtime: Runtime, clock: FakeClock, ids: list[str]) -> float:
    clock.advance(days=31)
    job = Worker(runtime)
    start = time.perf_counter()
    erased = 0
    while erased < len(ids):
        done = job.run_round().erased
        if done == 0:
            raise SystemExit("the worker stopped before erasing every expired referral")
        erased += done
    return (time.perf_counter() - start) / len(ids)


def by_hand(runtime: Runtime, clock: FakeClock, ids: list[str]) -> float:
    clock.advance(days=31)
    operator = identify()
    start = time.perf_counter()
    for rid in ids:
        pending = operator_event(operator, AuditAction.REFERRAL_ERASE, reason="retention_expired")
        pending.target("referral", rid)
        with runtime.unit_of_work(audit=pending) as uow:
            referral_cases.erase(
                uow, runtime.context(operator.principal), uuid.UUID(rid),
                EraseReason.RETENTION_EXPIRED,
            )  # fmt: skip
    return (time.perf_counter() - start) / len(ids)


@contextmanager
def app_on(url: str, instance: Path, clock: FakeClock) -> Iterator[Flask]:
    app = create_app(
        Settings(instance_path=instance, database_url=url, log_level="WARNING"), clock=clock
    )
    runtime: Runtime = app.extensions["referrals"]
    # Big enough that one round erases a whole round's referrals.
    runtime.settings = runtime.settings.with_overrides(retention_batch_size=PER_ROUND)
    with runtime.unit_of_work() as uow:
        seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
    try:
        yield app
    finally:
        runtime.dispose()


def bench(name: str, url: str, instance: Path) -> None:
    clock = FakeClock()
    with app_on(url, instance, clock) as app:
        runtime: Runtime = app.extensions["referrals"]
        client = app.test_client()
        key = devissuer.load_or_create_key(instance)
        worker = {
            "Authorization": "Bearer "
            + devissuer.mint(key, role=Role.YOUTH_WORKER, unit="ungdomsjouren",
                             audience="referrals-api", lifetime=86400)
        }  # fmt: skip
        officer = {
            "Authorization": "Bearer "
            + devissuer.mint(key, role=Role.PRIVACY_OFFICER, unit=None, audience="referrals-api",
                             lifetime=86400)
        }  # fmt: skip
        timings: dict[str, list[float]] = {"A": [], "B": []}
        order = ["A", "B", "B", "A"] * ((ROUNDS + 1) // 2)
        for variant in ["A", "B", *order[: 2 * ROUNDS]]:  # one warm-up round each
            ids = drafts(client, worker, PER_ROUND)
            run = by_worker if variant == "A" else by_hand
            timings[variant].append(run(runtime, clock, ids))
        a = statistics.median(timings["A"][1:]) * 1e3
        b = statistics.median(timings["B"][1:]) * 1e3
        say(f"{name}: {ROUNDS} rounds of {PER_ROUND} per variant, median ms per erased referral")
        say(f"  A worker retention round      {a:7.2f} ms")
        say(f"  B one by one, as `erase` does {b:7.2f} ms")
        say(f"  ratio A/B {a / b:.3f}")

        # The report over what is left: every erased skeleton, open drafts, some holds.
        live = drafts(client, worker, 200)
        for rid in live[:20]:
            client.put(
                f"/api/v1/referrals/{rid}/legal-hold",
                json={"reason_code": "audit_review"},
                headers=officer,
            )
        times = []
        for _ in range(7):
            start = time.perf_counter()
            response = client.get("/api/v1/privacy/retention?days=30", headers=officer)
            times.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"report failed: {response.status_code}")
        body: dict[str, Any] = response.get_json()
        with runtime.unit_of_work() as uow:
            counts = retention.backlog(uow.session, runtime.retention_policy(), clock.now)
        say(
            f"  report over {2 * ROUNDS * PER_ROUND + PER_ROUND * 2} erased and 200 live "
            f"drafts (due {body['due_count']}, held {body['held_count']}): median "
            f"{statistics.median(times) * 1e3:.1f} ms; backlog now {counts}"
        )


def main() -> None:
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (base / "sqlite").mkdir()
        url = stack.enter_context(sqlite_database(base / "sqlite"))
        bench("SQLite", url, base / "sqlite")
        try:
            pg = stack.enter_context(postgres_database())
        except Exception as exc:  # no server: the SQLite figures stand alone
            say(f"PostgreSQL skipped: {type(exc).__name__}")
            return
        (base / "pg").mkdir()
        bench("PostgreSQL", pg, base / "pg")


if __name__ == "__main__":
    main()
