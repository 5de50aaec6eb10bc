"""What the audit trail costs a read, measured on PostgreSQL in one process and one run.

    .venv/bin/python -m tests.benchmarks.bench_audit          # one referral: GET /referrals/{id}
    .venv/bin/python -m tests.benchmarks.bench_audit list     # a list of 50: GET /referrals
    .venv/bin/python -m tests.benchmarks.bench_audit --threads 8   # 8 concurrent readers

The list variant is where an event names many referrals (``audit_event_targets``: one
extra multi-row INSERT per audited list), so it shows that cost beside the decryption of
50 referrals that every list pays anyway.

One app on a throw-away PostgreSQL database (``tests.support.databases.postgres_database``)
serves both variants of ``GET /api/v1/referrals/{id}`` for the same referral, through the
Flask test client:

  A. audited, as shipped: the read's unit of work writes its audit event and commits it
     before the response is built (one INSERT in the read's transaction);
  B. the same app with ``UnitOfWork.commit`` replaced, inside this script only, by a plain
     ``session.commit()`` that marks the request's pending audit event as written, so the
     request neither records anything nor fails closed.

With ``--threads N`` each round's reads are made by N threads at once, each with its own
test client, as a gunicorn gthread worker serves them (deploy/gunicorn.conf.py): reads
that reach their commit together share one INSERT and one durable commit of their
events (referrals/audit/group.py), which one reader at a time never can.

Rounds alternate A and B (ABBA...) so both see the same machine noise; each variant's
figure is the median over its rounds of requests per second.  The script checks that A
writes exactly one event per request and B none.  Sealing is not running: it happens in its
own process, off the request path.  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db.models import AuditEvent
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from referrals.services.uow import UnitOfWork
from tests.benchmarks.report import ab_report_clocks, say
from tests.support.databases import postgres_database

ROUNDS = 40  # per variant, after one warm-up round each
PER_ROUND = 50  # reads per round
LISTED = 50  # referrals in the list variant (rounds and reads per round are fewer there)
LIST_ROUNDS, LIST_PER_ROUND = 16, 10

BODY = {
    "subject": {"name": "Benchmark Påhittadsson", "district": "sodermalm"},
    "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-000 56 78"},
    "categories": ["drugs", "school_absence"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "place_met": "Påhittade torget, vid fontänen",
    "narrative": "Påhittad berättelse. " * 40,
    "submit": True,
}


def _unaudited_commit(self: UnitOfWork) -> None:
    self.session.commit()
    if self.audit is not None:
        self.audit.written = True  # nothing recorded, and the request does not fail closed


@contextmanager
def unaudited() -> Iterator[None]:
    with mock.patch.object(UnitOfWork, "commit", _unaudited_commit):
        yield


@contextmanager
def audited() -> Iterator[None]:
    yield


VARIANTS = {"A": audited, "B": unaudited}
LABELS = {"A": "audited read", "B": "unaudited read"}


@dataclass(frozen=True)
class Readers:
    """The threads that make a round's reads together (``--threads``)."""

    pool: ThreadPoolExecutor
    threads: int


def one_round(
    client: FlaskClient,
    path: str,
    headers: dict[str, str],
    per_round: int = PER_ROUND,
    readers: Readers | None = None,
) -> tuple[float, float]:
    """(requests per wall-clock second, requests per process-CPU second) over one round;
    with ``readers``, the round's reads are shared out among its threads."""
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    if readers is None:
        read(client, path, headers, per_round)
    else:
        threads = readers.threads
        shares = [per_round // threads + (i < per_round % threads) for i in range(threads)]
        app = client.application
        for done in [
            readers.pool.submit(read, app.test_client(), path, headers, n) for n in shares if n
        ]:
            done.result()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return per_round / wall, per_round / cpu


def read(client: FlaskClient, path: str, headers: dict[str, str], count: int) -> None:
    for _ in range(count):
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"read failed: {response.status_code} {response.get_data()!r}")


def events(runtime: Runtime) -> int:
    with runtime.database.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def check_variants(
    client: FlaskClient,
    path: str,
    headers: dict[str, str],
    rt: Runtime,
    per_round: int,
    readers: Readers | None,
) -> None:
    """Prove each variant is what it claims: one event per read in A, none in B."""
    for name, expected in (("A", per_round), ("B", 0)):
        before = events(rt)
        with VARIANTS[name]():
            one_round(client, path, headers, per_round, readers)
        if events(rt) - before != expected:
            raise SystemExit(f"variant check failed: {name} wrote {events(rt) - before} events")


def measure(
    url: str, listing: bool, readers: Readers | None
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """The timings of every round, and how many audit events the run wrote."""
    with served(url) as (client, headers, runtime):
        for _ in range(LISTED if listing else 1):
            created = create(client, headers)
        if listing:
            path = f"/api/v1/referrals?limit={LISTED}"
            rounds, per_round = LIST_ROUNDS, LIST_PER_ROUND
        else:
            path = f"/api/v1/referrals/{created}"
            rounds, per_round = ROUNDS, PER_ROUND

        check_variants(client, path, headers, runtime, per_round, readers)
        for context in VARIANTS.values():  # warm-up: caches, the connection pool
            with context():
                one_round(client, path, headers, per_round, readers)
        timings: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for i in range(rounds):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                with VARIANTS[name]():
                    timings[name].append(one_round(client, path, headers, per_round, readers))
        return timings, events(runtime)


@contextmanager
def served(url: str) -> Iterator[tuple[FlaskClient, dict[str, str], Runtime]]:
    """The app on the database at ``url`` with the demo units: its test client, a youth
    worker's headers, its runtime (disposed of afterwards)."""
    with tempfile.TemporaryDirectory(prefix="referrals-bench-") as directory:
        instance = Path(directory) / "instance"
        app = create_app(Settings(instance_path=instance, database_url=url, log_level="WARNING"))
        runtime: Runtime = app.extensions["referrals"]
        try:
            with runtime.unit_of_work() as uow:
                seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
            key = devissuer.load_or_create_key(instance)
            token = devissuer.mint(
                key, role=Role.YOUTH_WORKER, unit="ungdomsjouren", audience="referrals-api"
            )
            yield app.test_client(), {"Authorization": f"Bearer {token}"}, runtime
        finally:
            runtime.database.dispose()


def create(client: FlaskClient, headers: dict[str, str]) -> str:
    """A submitted referral of BODY: its id."""
    created = client.post("/api/v1/referrals", json=BODY, headers=headers)
    if created.status_code != 201:
        raise SystemExit(f"create failed: {created.status_code} {created.get_data()!r}")
    return str(created.get_json()["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["list"], help="a list of 50 instead of one")
    parser.add_argument("--threads", type=int, default=1, help="concurrent readers (default 1)")
    arguments = parser.parse_args()
    started = time.perf_counter()
    listing = arguments.what == "list"
    threads = max(1, arguments.threads)
    readers = Readers(ThreadPoolExecutor(max_workers=threads), threads) if threads > 1 else None
    try:
        with postgres_database() as url:
            timings, written = measure(url, listing, readers)
    except pytest.skip.Exception as exc:
        raise SystemExit(f"no PostgreSQL: {exc}") from None
    finally:
        if readers is not None:
            readers.pool.shutdown()
    # The creates, the variant check's A round, A's warm-up round and every A round.
    if listing:
        expected = LISTED + LIST_PER_ROUND * (2 + LIST_ROUNDS)
        rounds, per_round, what = (
            LIST_ROUNDS,
            LIST_PER_ROUND,
            f"GET /api/v1/referrals?limit={LISTED}",
        )
    else:
        expected = 1 + PER_ROUND * (2 + ROUNDS)
        rounds, per_round, what = ROUNDS, PER_ROUND, "GET /api/v1/referrals/{id}"
    if written != expected:
        raise SystemExit(f"{written} audit events written, expected {expected}")

    say(f"audit benchmark: Python {sys.version.split()[0]}, PostgreSQL (throw-away database)")
    say(
        f"{rounds} interleaved rounds per variant x {per_round} reads"
        f" of {what}, Flask test client, one process, {threads} reader thread(s)"
    )
    say(f"audit events written in the run: {written} (one per audited request, none for B)")
    ab_report_clocks(
        timings,
        labels=LABELS,
        per="requests",
        ratio="audited/unaudited",
        cost="audit cost",
        goal="goal >= 0.8",
    )
    say()
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
