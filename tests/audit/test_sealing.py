"""The chain as stored: sealing committed events, checkpoints, and the verifier finding
the exact sequence number an attacker with database access altered, removed or swapped."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from referrals.audit import chain, sealing
from referrals.db.engine import Database
from referrals.runtime import Runtime, audit_public_keys


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


@pytest.fixture
def traffic(client: FlaskClient, dev_token: Callable[..., str]) -> int:
    """Some audited requests: creates, reads, a denied read.  Returns how many."""
    worker = {"Authorization": f"Bearer {dev_token('youth_worker', 'ungdomsjouren')}"}
    other = {"Authorization": f"Bearer {dev_token('caseworker', 'sodermalm')}"}
    ids = []
    for _ in range(4):
        created = client.post("/api/v1/referrals", json={"categories": ["drugs"]}, headers=worker)
        assert created.status_code == 201
        ids.append(created.json["id"])
    for rid in ids:
        assert client.get(f"/api/v1/referrals/{rid}", headers=worker).status_code == 200
        assert client.get(f"/api/v1/referrals/{rid}", headers=other).status_code == 404
    return 12


def seal_and_verify(app: Flask, database: Database) -> sealing.Verification:
    runtime = runtime_of(app)
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    with database.sessions() as session:
        return sealing.verify(session, audit_public_keys(runtime))


def test_every_request_is_sealed_once_and_the_chain_verifies(
    app: Flask, database: Database, traffic: int
) -> None:
    result = seal_and_verify(app, database)
    assert result.ok
    assert (result.sealed, result.pending) == (traffic, 0)
    with database.sessions() as session:
        assert sealing.seal_pending(session, runtime_of(app).clock) == 0  # exactly once


def _event_id_at(connection: Connection, seq: int) -> str:
    return str(
        connection.execute(
            text("SELECT event_id FROM audit_seals WHERE seq = :seq"), {"seq": seq}
        ).scalar_one()
    )


def test_an_altered_event_is_named(
    app: Flask, database: Database, db_connection: Connection, traffic: int, backend: str
) -> None:
    assert seal_and_verify(app, database).ok
    if backend == "postgresql":  # the trigger refuses; a superuser attacker disables it
        db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    db_connection.execute(
        text("UPDATE audit_events SET http_status = http_status + 1 WHERE id = :id"),
        {"id": _event_id_at(db_connection, 7)},
    )
    finding = seal_and_verify(app, database).finding
    assert finding == chain.Finding(7, "altered", finding.detail if finding else "")


def test_a_deleted_event_is_named(
    app: Flask, database: Database, db_connection: Connection, traffic: int, backend: str
) -> None:
    assert seal_and_verify(app, database).ok
    if backend == "postgresql":
        db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    event_id = _event_id_at(db_connection, 5)
    db_connection.execute(text("DELETE FROM audit_seals WHERE seq = 5"))
    db_connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": event_id})
    finding = seal_and_verify(app, database).finding
    assert finding is not None
    assert (finding.seq, finding.problem) == (5, "missing")


def test_swapped_events_are_named(
    app: Flask, database: Database, db_connection: Connection, traffic: int, backend: str
) -> None:
    assert seal_and_verify(app, database).ok
    if backend == "postgresql":
        db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    first, second = _event_id_at(db_connection, 3), _event_id_at(db_connection, 4)
    # Swap which event each position points to (through a free placeholder seq).
    db_connection.execute(text("UPDATE audit_seals SET seq = -1 WHERE seq = 3"))
    db_connection.execute(text("UPDATE audit_seals SET seq = 3 WHERE seq = 4"))
    db_connection.execute(text("UPDATE audit_seals SET seq = 4 WHERE seq = -1"))
    assert {_event_id_at(db_connection, 3), _event_id_at(db_connection, 4)} == {first, second}
    finding = seal_and_verify(app, database).finding
    assert finding is not None
    assert (finding.seq, finding.problem) == (3, "altered")


def test_a_truncated_tail_is_caught_by_the_checkpoint(
    app: Flask, database: Database, db_connection: Connection, traffic: int, backend: str
) -> None:
    runtime = runtime_of(app)
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    with database.sessions() as session:
        signed = sealing.checkpoint(session, runtime.audit_signing_key, runtime.clock)
    assert signed is not None
    assert signed.seq == traffic
    if backend == "postgresql":
        db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    tail = [_event_id_at(db_connection, seq) for seq in range(10, traffic + 1)]
    db_connection.execute(text("DELETE FROM audit_seals WHERE seq >= 10"))
    for event_id in tail:
        db_connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": event_id})
    with database.sessions() as session:
        finding = sealing.verify(session, audit_public_keys(runtime)).finding
    assert finding is not None
    assert (finding.seq, finding.problem) == (traffic, "checkpoint-beyond-chain")


def test_a_checkpoint_signed_with_another_key_is_caught(
    app: Flask, database: Database, traffic: int
) -> None:
    runtime = runtime_of(app)
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    with database.sessions() as session:
        sealing.checkpoint(session, chain.generate_signing_key(), runtime.clock)
    with database.sessions() as session:
        finding = sealing.verify(session, audit_public_keys(runtime)).finding
    assert finding is not None
    assert (finding.seq, finding.problem) == (traffic, "bad-checkpoint")
