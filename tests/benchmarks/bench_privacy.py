"""What the privacy exports cost, measured in one process and one run.

    .venv/bin/python -m tests.benchmarks.bench_privacy

1. Suppression (pure): ``protect`` on random tables of the shapes ``GET /statistics``
   answers (months x districts, categories x months, ...), against primary suppression
   alone in the same run: time per table, and how much more complementary suppression
   withholds (cells, people).
2. Over HTTP, one app on a temporary SQLite instance: the data-subject export of one
   person with N referrals, against the caseworker's search for the same number (the same
   blind-index lookup and decryption, without timelines, notes and access logs), and
   ``GET /statistics`` over all referrals.  Rounds alternate A and B (ABBA...); the
   figure is the median over rounds.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db import migrate
from referrals.domain.suppression import extend, protect
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from tests.api.helpers import personal_number
from tests.benchmarks.report import say

SHAPES = {
    "district (15 x 1)": (15, 1),
    "months x districts (36 x 15)": (36, 15),
    "category x month (10 x 36)": (10, 36),
    "district x outcome (15 x 10)": (15, 10),
}
TABLES = 20  # random tables per shape
MIN_CELL = 5
PEOPLE_REFERRALS = 30  # the exported person's referrals
OTHER_REFERRALS = 300
ROUNDS = 15
DISTRICTS = ("norrmalm", "sodermalm", "kungsholmen", "farsta", "skarpnack")


def random_table(rng: random.Random, rows: int, columns: int) -> list[list[int]]:
    """Counts as a city's referrals spread them: many small cells, a few large ones."""
    return [[int(rng.expovariate(1 / 6)) for _ in range(columns)] for _ in range(rows)]


def primary_only(cells: list[list[int]]) -> int:
    return sum(1 for row in extend(cells) for v in row if 0 < v < MIN_CELL)


def suppression() -> None:
    rng = random.Random(12)
    say(f"1. suppression, threshold {MIN_CELL}, {TABLES} random tables per shape")
    say(f"  {'shape':<30} {'protect ms':>10} {'primary ms':>10} {'ratio':>7} "
        f"{'withheld':>9} {'primary':>8} {'people':>7}")  # fmt: skip
    for label, (rows, columns) in SHAPES.items():
        tables = [random_table(rng, rows, columns) for _ in range(TABLES)]
        full, primary, withheld, only_primary, people, everyone = [], [], 0, 0, 0, 0
        for cells in tables:
            started = time.perf_counter()
            published = protect(cells, MIN_CELL)
            full.append(time.perf_counter() - started)
            started = time.perf_counter()
            only_primary += primary_only(cells)
            primary.append(time.perf_counter() - started)
            interior = [(r, c) for r in range(rows) for c in range(columns)]
            hidden = [p for p in interior if published.cells[p[0]][p[1]] is None]
            withheld += len(hidden)
            people += sum(cells[r][c] for r, c in hidden)
            everyone += sum(map(sum, cells))
        a, b = statistics.median(full) * 1000, statistics.median(primary) * 1000
        total = rows * columns * TABLES
        say(f"  {label:<30} {a:10.2f} {b:10.3f} {a / b:7.0f} {withheld / total:9.1%} "
            f"{only_primary / ((rows + 1) * (columns + 1) * TABLES):8.1%} "
            f"{people / everyone:7.1%}")  # fmt: skip
    say("  (withheld: share of cells withheld; primary: share under the threshold, totals")
    say("   included; people: share of counted referrals in withheld cells)")


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def over_http() -> None:
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="referrals-bench-", dir=scratch) as directory:
        instance = Path(directory) / "instance"
        app = create_app(Settings(instance_path=instance, log_level="WARNING"))
        runtime: Runtime = app.extensions["referrals"]
        migrate.upgrade(
            runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
        )
        with runtime.unit_of_work() as uow:
            seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
        key = devissuer.load_or_create_key(instance)

        def headers(role: Role, unit: str | None = None) -> dict[str, str]:
            token = devissuer.mint(key, role=role, unit=unit, audience="referrals-api")
            return {"Authorization": f"Bearer {token}"}

        worker = headers(Role.YOUTH_WORKER, "ungdomsjouren")
        client: FlaskClient = app.test_client()
        person = personal_number(2010, 4, 5, "123")
        rng = random.Random(7)
        made = 0
        for i in range(PEOPLE_REFERRALS + OTHER_REFERRALS):
            number = (
                person
                if i < PEOPLE_REFERRALS
                else personal_number(2009, 1 + i % 12, 1 + i % 28, f"{100 + i % 800:03d}")
            )
            body = {
                "subject": {"name": "Bench Påhittad", "personal_number": number,
                            "district": rng.choice(DISTRICTS)},
                "categories": rng.sample(["drugs", "violence", "school_absence", "other"], 2),
                "priority": rng.choice(["acute", "urgent", "normal"]),
                "legal_basis": "duty_to_report", "narrative": "Påhittad berättelse.",
                "submit": True,
            }  # fmt: skip
            made += client.post("/api/v1/referrals", json=body, headers=worker).status_code == 201
        assert made == PEOPLE_REFERRALS + OTHER_REFERRALS
        officer = headers(Role.PRIVACY_OFFICER)
        sender = worker  # sent them all: its search opens every one of them
        analyst = headers(Role.ANALYST)

        def export() -> None:
            got = client.post("/api/v1/privacy/subject-access",
                              json={"personal_number": person}, headers=officer)  # fmt: skip
            assert len(got.get_json()["referrals"]) == PEOPLE_REFERRALS

        def search() -> None:
            got = client.post("/api/v1/referrals/search",
                              json={"personal_number": person}, headers=sender)  # fmt: skip
            assert got.status_code == 200

        def stats() -> None:
            got = client.get("/api/v1/statistics?by=district,priority", headers=analyst)
            assert got.status_code == 200

        for warm in (export, search, stats):
            warm()
        runs: dict[str, list[float]] = {"export": [], "search": [], "statistics": []}
        for i in range(ROUNDS):
            order = ("export", "search") if i % 2 == 0 else ("search", "export")
            for name in order:
                runs[name].append(timed(export if name == "export" else search))
            runs["statistics"].append(timed(stats))
        runtime.database.dispose()
    e, s, t = (statistics.median(runs[k]) * 1000 for k in ("export", "search", "statistics"))
    say(f"2. over HTTP (SQLite on {'tmpfs' if scratch else 'disk'}), {ROUNDS} rounds, medians:")
    say(f"  A export of one person with {PEOPLE_REFERRALS} referrals "
        f"(of {PEOPLE_REFERRALS + OTHER_REFERRALS}): {e:8.1f} ms")  # fmt: skip
    say(f"  B search for the same number by the unit that sent them all: {s:8.1f} ms")
    say(f"  ratio A/B {e / s:.2f}")
    say(f"  GET /statistics?by=district,priority over {PEOPLE_REFERRALS + OTHER_REFERRALS} "
        f"referrals: {t:8.1f} ms")  # fmt: skip


def main() -> None:
    started = time.perf_counter()
    say(f"privacy benchmark: Python {sys.version.split()[0]}")
    suppression()
    say()
    over_http()
    say()
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
