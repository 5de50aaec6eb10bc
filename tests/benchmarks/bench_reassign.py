"""What a unit lead's reassignment of a whole caseload costs, on PostgreSQL, in one run.

    .venv/bin/python -m tests.benchmarks.bench_reassign
    REFERRALS_BENCH_CASELOAD=5000 .venv/bin/python -m tests.benchmarks.bench_reassign

One app on a throw-away PostgreSQL database (``tests.support.databases.postgres_database``).
The caseload (1,000 open referrals of one caseworker by default) is filled through the
service layer's own pieces (sealed fields, timeline, assignment) in a few transactions, not
through 1,000 HTTP calls.  Then, through the Flask test client:

  A. ``POST /api/v1/units/norrmalm/reassign`` moving the whole caseload, back and forth
     between two caseworkers (each round moves every referral);
  B. the baseline: ``POST /api/v1/referrals/{id}/assign`` handing over one referral.

The figures are medians over rounds; the ratio says how many single hand-overs one
reassignment of the whole caseload costs (1,000 would mean "no better than one by one").
The script counts the SQL statements of one reassignment (a handful, whatever the size)
and checks that every referral moved, with one timeline event each and one audit event
naming them all.  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Principal, Role
from referrals.config import Settings
from referrals.db.models import AuditEvent, AuditEventTarget, Referral, TimelineEvent
from referrals.domain.codes import LegalBasis, Priority, Status
from referrals.runtime import OPERATOR, Runtime
from referrals.services import assignment, records, seeding
from referrals.services.timeline import record_event
from tests.benchmarks.report import say
from tests.support.databases import postgres_database

CASELOAD = int(os.environ.get("REFERRALS_BENCH_CASELOAD", "1000"))
ROUNDS = int(os.environ.get("REFERRALS_BENCH_ROUNDS", "6"))
SINGLE = 30  # single hand-overs measured for the baseline
BATCH = 250  # referrals per filling transaction
UNIT, ANNA, BO, LINA = "norrmalm", "anna@norrmalm", "bo@norrmalm", "lina@norrmalm"
BODY: dict[str, Any] = {
    "subject": {"name": "Benchmark Påhittadsson", "district": UNIT},
    "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-000 56 78"},
    "categories": ["drugs", "school_absence"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "place_met": "Påhittade torget",
    "narrative": "Påhittad berättelse. " * 10,
}


def fill(runtime: Runtime, count: int, issuer: str) -> list[uuid.UUID]:
    """``count`` accepted referrals at norrmalm, each assigned to Anna."""
    anna = Principal(issuer=issuer, subject=ANNA, roles=frozenset({Role.CASEWORKER}), unit=UNIT)
    ids: list[uuid.UUID] = []
    for start in range(0, count, BATCH):
        with runtime.unit_of_work() as uow:
            ctx = runtime.context(anna)
            for _ in range(min(BATCH, count - start)):
                row = Referral(
                    id=uuid.uuid4(),
                    status=Status.DRAFT,
                    sending_unit_id="ungdomsjouren",
                    created_by=f"{issuer}|dev-youth_worker@ungdomsjouren",
                    priority=Priority.NORMAL,
                    created_at=ctx.now,
                    updated_at=ctx.now,
                )
                sealer = ctx.vault.new_sealer(row)
                records.write_case(row, BODY, today=ctx.today, sealer=sealer, vault=ctx.vault)
                record_event(row, ctx, sealer, action="create", from_status=None)
                row.legal_basis = LegalBasis.DUTY_TO_REPORT
                row.receiving_unit_id = UNIT
                row.submitted_at = ctx.now
                row.status = Status.ACCEPTED
                assignment.set_assignee(row, ctx, ANNA)
                record_event(row, ctx, sealer, action="accept", from_status=Status.REQUESTED)
                uow.session.add(row)
                ids.append(row.id)
            uow.commit()
    return ids


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]).split(None, 1)[0].upper())

    event.listen(runtime.database.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", count)


def timed(client: FlaskClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    start = time.perf_counter()
    response = client.post(url, json=body, headers=headers)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"{url} failed: {response.status_code} {response.get_data()!r}")
    return elapsed


def check(runtime: Runtime, ids: list[uuid.UUID], holder: str, moves: int) -> None:
    with runtime.database.sessions() as session:
        held = session.scalar(
            select(func.count()).where(Referral.assignee == holder, Referral.id.in_(ids))
        )
        moved = session.scalar(
            select(func.count())
            .select_from(TimelineEvent)
            .where(TimelineEvent.action == "reassign")
        )
        audited = session.scalars(
            select(AuditEvent.id).where(
                AuditEvent.action == "unit:reassign", AuditEvent.outcome == "allowed"
            )
        ).all()
        named = session.scalar(
            select(func.count())
            .select_from(AuditEventTarget)
            .where(AuditEventTarget.event_id.in_(audited))
        )
    expected = (len(ids), len(ids) * moves, moves + 1, len(ids) * (moves + 1))
    found = (held, moved, len(audited), named)
    if found != expected:
        raise SystemExit(f"check failed: (held, events, audit events, named) {found} != {expected}")


def measure(url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="referrals-bench-") as directory:
        instance = Path(directory) / "instance"
        app = create_app(Settings(instance_path=instance, database_url=url, log_level="WARNING"))
        runtime: Runtime = app.extensions["referrals"]
        try:
            with runtime.unit_of_work() as uow:
                seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
            key = devissuer.load_or_create_key(instance)

            def headers(role: Role, subject: str) -> dict[str, str]:
                token = devissuer.mint(
                    key, role=role, unit=UNIT, audience="referrals-api", subject=subject
                )
                return {"Authorization": f"Bearer {token}"}

            anna, bo = headers(Role.CASEWORKER, ANNA), headers(Role.CASEWORKER, BO)
            lina = headers(Role.UNIT_LEAD, LINA)
            client = app.test_client()
            for who in (anna, bo):  # staff become known by working in their inbox
                assert client.get("/api/v1/referrals?limit=1", headers=who).status_code == 200

            start = time.perf_counter()
            ids = fill(runtime, CASELOAD, devissuer.DEV_ISSUER)
            filling = time.perf_counter() - start
            reassign = f"/api/v1/units/{UNIT}/reassign"

            dry = timed(client, reassign, {"from": ANNA, "to": BO, "dry_run": True}, lina)
            moves: list[float] = []
            with statements(runtime) as seen:
                moves.append(timed(client, reassign, {"from": ANNA, "to": BO}, lina))
            holder = BO
            for i in range(1, ROUNDS):
                source, holder = (BO, ANNA) if i % 2 else (ANNA, BO)
                moves.append(timed(client, reassign, {"from": source, "to": holder}, lina))
            check(runtime, ids, holder, ROUNDS)

            # The baseline: one referral handed over at a time (and back, alternately).
            singles: list[float] = []
            for i in range(SINGLE):
                to = ANNA if (i % 2 == 0) == (holder == BO) else BO
                rid = ids[0]
                singles.append(
                    timed(client, f"/api/v1/referrals/{rid}/assign", {"assignee": to}, lina)
                )
        finally:
            runtime.database.dispose()

    move, single = statistics.median(moves), statistics.median(singles)
    say(f"reassignment benchmark: Python {sys.version.split()[0]}, PostgreSQL (throw-away)")
    say(
        f"caseload: {CASELOAD} open referrals, filled in {filling:.1f} s "
        f"({CASELOAD // BATCH or 1} transactions)"
    )
    say(f"dry run (list {CASELOAD} ids):          {dry * 1000:8.1f} ms")
    say(
        f"reassign {CASELOAD} referrals, median of {ROUNDS}: {move * 1000:8.1f} ms "
        f"(min {min(moves) * 1000:.1f}, max {max(moves) * 1000:.1f})"
    )
    say(f"  SQL statements in one reassignment: {len(seen)} ({', '.join(seen)})")
    say(f"baseline: hand over one referral, median of {SINGLE}: {single * 1000:8.1f} ms")
    say(
        f"ratio reassign-all / hand-over-one: {move / single:.1f} "
        f"(one by one would be {CASELOAD}); per referral moved: {move / CASELOAD * 1e6:.0f} µs"
    )


def main() -> None:
    try:
        with postgres_database() as url:
            measure(url)
    except pytest.skip.Exception as exc:
        raise SystemExit(f"no PostgreSQL: {exc}") from None


if __name__ == "__main__":
    main()
