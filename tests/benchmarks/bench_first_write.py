"""What beginning a read's transaction at its first write saves, on PostgreSQL, in one
process and one run.

    .venv/bin/python -m tests.benchmarks.bench_first_write

One app on a throw-away PostgreSQL database serves ``GET /api/v1/referrals/{id}`` (the
youth worker's own referral), every read audited, in two variants:

  A. as shipped (referrals/db/first_write.py): the SELECT in autocommit, the audit
     event's INSERT a transaction of its own: two round trips;
  B. the unit of work's transaction begun at its first statement, as before that change
     (``begin_at_first_write`` replaced, inside this script only, by nothing): BEGIN,
     SELECT, INSERT, COMMIT.

Rounds alternate A and B (ABBA...), so both see the same machine noise; each variant's
figure is the median over its rounds, by wall clock and by this process's CPU time
(PostgreSQL's own work not included).  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from referrals.services import uow as uow_module
from tests.benchmarks.bench_audit import create, one_round, served
from tests.benchmarks.report import ab_report_clocks, say
from tests.support.databases import postgres_database

ROUNDS = 30  # per variant, after one warm-up round each
PER_ROUND = 50


@contextmanager
def at_first_write() -> Iterator[None]:
    yield


@contextmanager
def from_the_start() -> Iterator[None]:
    with mock.patch.object(uow_module, "begin_at_first_write", return_value=None):
        yield


VARIANTS = {"A": at_first_write, "B": from_the_start}
LABELS = {"A": "at first write", "B": "from the start"}


def measure(url: str, rounds: int) -> dict[str, list[tuple[float, float]]]:
    with served(url) as (client, headers, _runtime):
        path = f"/api/v1/referrals/{create(client, headers)}"
        for context in VARIANTS.values():  # warm-up: caches, the connection pool
            with context():
                one_round(client, path, headers, PER_ROUND)
        timings: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for i in range(rounds):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                with VARIANTS[name]():
                    timings[name].append(one_round(client, path, headers, PER_ROUND))
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    arguments = parser.parse_args()
    started = time.perf_counter()
    try:
        with postgres_database() as url:
            timings = measure(url, max(2, arguments.rounds))
    except pytest.skip.Exception as exc:
        raise SystemExit(f"no PostgreSQL: {exc}") from None
    say(f"first-write benchmark: Python {sys.version.split()[0]}, PostgreSQL (throw-away)")
    say(
        f"{max(2, arguments.rounds)} interleaved rounds per variant x {PER_ROUND} audited"
        " reads of GET /api/v1/referrals/{id}, Flask test client, one process"
    )
    ab_report_clocks(
        timings,
        labels=LABELS,
        per="requests",
        ratio="at first write/from the start",
        cost="difference",
    )
    say()
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
