"""A unit of work's transaction begins at its first write, on PostgreSQL
(referrals/db/first_write.py).

What must hold: a read is its SELECTs and its audit event's INSERT, nothing else, and the
event is durable before the answer; a write never commits on its own, however it was
sent (a flush, ``text()``) and whatever was read before it; whatever a statement holds
until the commit (a row lock, an advisory lock) is held until the unit of work ends, and
a notification goes only with a commit; an event that names several referrals commits its
two INSERTs together; a connection goes back to the pool as it came, beginning
transactions as usual; and under a stricter isolation level than READ COMMITTED nothing
of this applies.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, literal, select, text
from sqlalchemy.exc import OperationalError

from referrals.db.engine import Database, connect
from referrals.db.first_write import in_transaction
from referrals.db.models import AuditEvent, Unit
from referrals.runtime import Runtime
from referrals.services.uow import UnitOfWork
from tests.api.helpers import REFERRALS, Actors, referral_body
from tests.support.statements import sent_statements

pytestmark = pytest.mark.postgres_only

ADVISORY_KEY = 734_221  # any number no other code locks


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def in_transaction_or_not(connection: Any, statement: str) -> tuple[str, bool]:
    """A statement's head, with whether it ran inside a transaction."""
    head = statement.split("(")[0].split(" WHERE ")[0].strip()
    return ("SELECT" if head.startswith("SELECT") else head), in_transaction(connection)


def created(app: Flask, actors: Actors) -> str:
    response = app.test_client().post(
        REFERRALS, json=referral_body(submit=True), headers=actors.worker
    )
    assert response.status_code == 201, response.get_json()
    rid = str(response.get_json()["id"])
    # The receiving caseworker's first request records them as staff of the unit (a
    # write); make it here so that the reads under test write nothing.
    assert app.test_client().get(f"{REFERRALS}/{rid}", headers=actors.norrmalm).status_code == 200
    return rid


def events_of(database: Database, request_id: str) -> int:
    """Seen from another connection: committed, not merely sent."""
    with database.engine.connect() as other:
        return int(
            other.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.request_id == request_id)
            )
            or 0
        )


def test_a_read_is_its_select_and_its_event_and_the_event_is_durable_when_it_answers(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    rid = created(live_app, actors)

    with sent_statements(committed_database.engine, in_transaction_or_not) as sent:
        response = live_app.test_client().get(f"{REFERRALS}/{rid}", headers=actors.norrmalm)

    assert response.status_code == 200
    # Neither ran in a transaction: psycopg sent no BEGIN and no COMMIT, and the
    # event's INSERT was a transaction of its own.
    *reads, last = sent
    assert reads  # the referral, the caller's staff row
    assert set(reads) == {("SELECT", False)}
    assert last == ("INSERT INTO audit_events", False)
    assert events_of(committed_database, response.headers["X-Request-ID"]) == 1


def test_a_read_whose_event_cannot_be_written_fails_closed_and_records_nothing(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    rid = created(live_app, actors)
    with committed_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE audit_events ADD CONSTRAINT test_no_reads"
            " CHECK (action <> 'referral:read') NOT VALID"
        )
    try:
        response = live_app.test_client().get(f"{REFERRALS}/{rid}", headers=actors.norrmalm)
    finally:
        with committed_database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE audit_events DROP CONSTRAINT test_no_reads")

    assert response.status_code == 503
    assert "subject" not in (response.get_json() or {})
    with committed_database.engine.connect() as other:
        reads = other.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.request_id == response.headers["X-Request-ID"])
            .where(AuditEvent.action == "referral:read")
        )
    assert reads == 0


def test_a_flush_after_reads_is_never_committed_on_its_own(
    live_app: Flask, committed_database: Database
) -> None:
    with runtime_of(live_app).unit_of_work() as uow:
        assert uow.session.scalars(select(Unit.id)).all()  # a read first: autocommit
        now = datetime.now(UTC)
        uow.session.add(
            Unit(id="not-committed", name="Never", kind="receiver", created_at=now, updated_at=now)
        )
        uow.session.flush()
        assert in_transaction(uow.session.connection())
        # No commit: the unit of work ends by rolling back.

    with committed_database.engine.connect() as other:
        assert other.scalar(select(Unit.id).where(Unit.id == "not-committed")) is None


def test_a_text_statement_after_reads_is_never_committed_on_its_own(
    live_app: Flask, committed_database: Database
) -> None:
    with runtime_of(live_app).unit_of_work() as uow:
        assert uow.session.scalars(select(Unit.id)).all()
        uow.session.execute(text("UPDATE units SET name = 'Changed' WHERE id = 'norrmalm'"))

    with committed_database.engine.connect() as other:
        assert other.scalar(select(Unit.name).where(Unit.id == "norrmalm")) != "Changed"


def test_a_locking_read_holds_its_row_lock_until_the_unit_of_work_ends(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    rid = created(live_app, actors)
    lock = "SELECT id FROM referrals WHERE id = %(id)s FOR UPDATE NOWAIT"

    with runtime_of(live_app).unit_of_work() as uow:
        assert uow.referrals.get(uuid.UUID(rid), for_update=True) is not None
        with (
            committed_database.engine.connect() as other,
            pytest.raises(OperationalError, match="could not obtain lock"),
        ):
            other.exec_driver_sql(lock, {"id": rid})

    with committed_database.engine.connect() as other:
        assert other.exec_driver_sql(lock, {"id": rid}).scalar() is not None


def test_an_advisory_lock_taken_by_a_select_is_held_until_the_unit_of_work_ends(
    live_app: Flask, committed_database: Database
) -> None:
    take = select(func.pg_advisory_xact_lock(literal(ADVISORY_KEY)))
    probe = text("SELECT pg_try_advisory_xact_lock(:key)")

    with runtime_of(live_app).unit_of_work() as uow:
        uow.session.execute(take)
        with committed_database.engine.begin() as other:
            assert other.scalar(probe, {"key": ADVISORY_KEY}) is False

    with committed_database.engine.begin() as other:
        assert other.scalar(probe, {"key": ADVISORY_KEY}) is True


def test_a_notification_sent_by_a_select_goes_only_with_a_commit(
    live_app: Flask, database_url: str
) -> None:
    """NOTIFY is delivered when its transaction commits: sent outside one, it would go at
    once, for work that is then rolled back."""
    channel = f"first_write_{uuid.uuid4().hex}"
    address = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(address, autocommit=True) as listener:
        listener.execute(f"LISTEN {channel}")
        with runtime_of(live_app).unit_of_work() as uow:
            uow.session.execute(select(func.pg_notify(literal(channel), literal("rolled back"))))
            # No commit: the unit of work ends by rolling back.
        heard = [n.payload for n in listener.notifies(timeout=0.5)]
    assert heard == []


def test_an_event_naming_several_referrals_commits_its_two_inserts_together(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    for _ in range(2):
        created(live_app, actors)

    with sent_statements(committed_database.engine, in_transaction_or_not) as sent:
        response = live_app.test_client().get(REFERRALS, headers=actors.norrmalm)

    assert response.status_code == 200
    assert len(response.get_json()["items"]) == 2
    writes = [(head, inside) for head, inside in sent if not head.startswith("SELECT")]
    assert writes == [
        ("INSERT INTO audit_events", True),
        ("INSERT INTO audit_event_targets", True),
    ]


def test_a_connection_goes_back_to_the_pool_beginning_transactions_as_usual(
    database_url: str,
) -> None:
    database = connect(database_url, pool_size=1, max_overflow=0)
    try:
        with database.engine.connect():
            pass  # the first connection: the engine learns its isolation level
        with UnitOfWork(database.sessions) as uow:
            uow.session.execute(select(literal(1)))
            assert not in_transaction(uow.session.connection())

        # The pool's only connection, checked out again by plain code.
        with database.engine.connect() as connection:
            connection.execute(select(literal(1)))
            assert in_transaction(connection)
    finally:
        database.dispose()


@pytest.mark.parametrize(
    "options",
    [
        {"isolation_level": "REPEATABLE READ"},
        {"connect_args": {"options": "-c default_transaction_isolation=serializable"}},
    ],
    ids=["engine-repeatable-read", "server-default-serializable"],
)
def test_under_a_stricter_isolation_the_transaction_begins_with_the_first_statement(
    database_url: str, options: dict[str, Any]
) -> None:
    """There every statement of a transaction shares one snapshot: reads run outside it
    would each see another."""
    database = connect(database_url, **options)
    try:
        with database.engine.connect():
            pass  # the first connection: the engine learns its isolation level
        with UnitOfWork(database.sessions) as uow:
            uow.session.execute(select(literal(1)))
            assert in_transaction(uow.session.connection())
    finally:
        database.dispose()
