"""The sealer's queue (``audit_pending``, revision 0011): a round reads only new events.

Every committed event is queued by a trigger in its own transaction; the sealer takes the
oldest entries through the index and removes them in the transaction that seals them.
``seal_all`` seals everything pending, batch by batch.  The queue is not trusted: an entry
removed by someone with the sealer's rights leaves its event unsealed, and the verifier,
which counts unsealed events from the events themselves, still reports it; an entry
planted for an event already sealed gets no second seal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, select, text

from referrals.audit import sealing
from referrals.db.engine import Database
from referrals.db.models import AuditPending, AuditSeal
from referrals.runtime import audit_public_keys
from tests.audit.test_sealing import runtime_of

WORKER = ("youth_worker", "ungdomsjouren")


def requests(client: FlaskClient, dev_token: Callable[..., str], count: int) -> int:
    """``count`` audited requests (drafts created), each one event."""
    worker = {"Authorization": f"Bearer {dev_token(*WORKER)}"}
    for _ in range(count):
        made = client.post("/api/v1/referrals", json={"categories": ["drugs"]}, headers=worker)
        assert made.status_code == 201
    return count


def queued(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM audit_pending")).scalar_one())


def verify(app: Flask, database: Database) -> sealing.Verification:
    with database.sessions() as session:
        return sealing.verify(session, audit_public_keys(runtime_of(app)))


def test_every_event_is_queued_and_seal_all_empties_the_queue_in_batches(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
) -> None:
    made = requests(client, dev_token, 11)
    assert queued(db_connection) == made
    rounds: list[int] = []
    with database.sessions() as session:
        assert sealing.pending_count(session) == made
        sealed = sealing.seal_all(session, runtime_of(app).clock, limit=4, progress=rounds.append)
    assert sealed == made
    assert rounds == [4, 4, 3]  # three transactions of at most four
    assert queued(db_connection) == 0
    result = verify(app, database)
    assert result.ok
    assert (result.sealed, result.pending) == (made, 0)
    with database.sessions() as session:
        assert sealing.seal_pending(session, runtime_of(app).clock) == 0


def test_an_event_taken_off_the_queue_is_still_reported_as_pending(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
) -> None:
    made = requests(client, dev_token, 3)
    hidden = db_connection.execute(
        text("SELECT event_id FROM audit_pending ORDER BY recorded_at DESC LIMIT 1")
    ).scalar_one()
    db_connection.execute(text("DELETE FROM audit_pending WHERE event_id = :id"), {"id": hidden})
    with database.sessions() as session:
        assert sealing.seal_all(session, runtime_of(app).clock) == made - 1
    result = verify(app, database)
    assert result.ok  # the chain itself is intact ...
    assert (result.sealed, result.pending) == (made - 1, 1)  # ... but one event waits


def test_a_planted_entry_for_a_sealed_event_gets_no_second_seal(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
) -> None:
    made = requests(client, dev_token, 2)
    with database.sessions() as session:
        assert sealing.seal_all(session, runtime_of(app).clock) == made
    db_connection.execute(
        text(
            "INSERT INTO audit_pending (event_id, recorded_at) "
            "SELECT id, recorded_at FROM audit_events"
        )
    )
    assert queued(db_connection) == made
    with database.sessions() as session:
        assert sealing.seal_all(session, runtime_of(app).clock) == 0
    assert queued(db_connection) == 0
    result = verify(app, database)
    assert result.ok
    assert (result.sealed, result.pending) == (made, 0)


def test_a_round_writes_consecutive_seals_in_queue_order_at_the_round_time(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
) -> None:
    # The round's seals are written together (on PostgreSQL one INSERT of arrays): each
    # row must still carry its own position, event, hash and flag, and the round's time.
    made = requests(client, dev_token, 2)
    with database.sessions() as session:
        assert sealing.seal_all(session, runtime_of(app).clock) == made
    made = requests(client, dev_token, 5)
    order = (
        db_connection.execute(
            select(AuditPending.event_id).order_by(AuditPending.recorded_at, AuditPending.event_id)
        )
        .scalars()
        .all()
    )
    with database.sessions() as session:
        assert sealing.seal_pending(session, runtime_of(app).clock) == made
    rows = db_connection.execute(
        select(AuditSeal.seq, AuditSeal.event_id, AuditSeal.sealed_at, AuditSeal.flag)
        .where(AuditSeal.seq > 2)
        .order_by(AuditSeal.seq)
    ).all()
    assert [row.seq for row in rows] == [3, 4, 5, 6, 7]
    assert [row.event_id for row in rows] == order
    assert {row.sealed_at.replace(tzinfo=None) for row in rows} == {
        runtime_of(app).clock().astimezone(UTC).replace(tzinfo=None)
    }
    assert {row.flag for row in rows} == {None}
    result = verify(app, database)
    assert result.ok
    assert (result.sealed, result.pending) == (7, 0)
