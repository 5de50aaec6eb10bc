"""Item 2 of "Trust under attack": what the application's own credentials can forge.

The review's attacks, reproduced: a back-dated event with a verified-looking actor
INSERTed straight into ``audit_events`` (what the app role may do), and a checkpoint
planted at seq 2**31-1 (which stopped every later checkpoint).  The sealer flags the
first, the verifier reports it, and the second neither stalls signing nor passes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError

from referrals.audit import sealing
from referrals.db.engine import Database
from referrals.db.models import AuditCheckpoint, AuditEvent, AuditSeal
from referrals.runtime import Runtime, audit_public_keys
from tests.support.audit_forgery import forge_back_dated_event, forged_event
from tests.support.clock import FakeClock

PLANTED_SEQ = 2**31 - 1


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def requests(client: FlaskClient, token: str, count: int) -> None:
    for _ in range(count):
        response = client.get("/api/v1/units", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def seal(app: Flask, database: Database) -> int:
    with database.sessions() as session:
        return sealing.seal_pending(session, runtime_of(app).clock)


def test_a_back_dated_event_is_flagged_by_the_sealer_and_reported_by_verify(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
    clock: FakeClock,
) -> None:
    token = dev_token("auditor")
    requests(client, token, 3)
    assert seal(app, database) == 3
    clock.advance(seconds=2)
    forged = forge_back_dated_event(db_connection, clock)
    requests(client, token, 2)
    clock.advance(seconds=1)
    seal(app, database)

    with database.sessions() as session:
        result = sealing.verify(session, audit_public_keys(runtime_of(app)))
    assert result.ok  # the chain itself is intact: the forgery is in it, flagged
    forged_seq = db_connection.execute(
        select(AuditSeal.seq).where(AuditSeal.event_id == forged)
    ).scalar_one()
    assert [(f.seq, f.flag) for f in result.flagged] == [(forged_seq, "backdated")]

    body = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}).json
    assert body["flagged"] == [{"seq": forged_seq, "flag": "backdated"}]
    assert body["status"] == "flagged"


def test_events_sealed_late_after_an_outage_are_not_flagged(
    app: Flask,
    client: FlaskClient,
    database: Database,
    dev_token: Callable[..., str],
    clock: FakeClock,
) -> None:
    """A sealer that was down an hour sees an hour-old backlog: that is no forgery."""
    token = dev_token("auditor")
    requests(client, token, 2)
    seal(app, database)
    requests(client, token, 2)
    clock.advance(hours=1)
    seal(app, database)
    with database.sessions() as session:
        assert sealing.verify(session, audit_public_keys(runtime_of(app))).flagged == ()


def test_a_checkpoint_planted_beyond_the_chain_does_not_stall_signing(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
    backend: str,
    clock: FakeClock,
) -> None:
    requests(client, dev_token("auditor"), 2)
    seal(app, database)
    plant = insert(AuditCheckpoint).values(
        seq=PLANTED_SEQ,
        head=bytes(32),
        created_at=clock(),
        previous=None,
        key_id="ed25519-0000000000000000",
        signature=bytes(64),
    )
    if backend == "postgresql":
        # Checkpoints may only cover sealed positions: refused for every role.
        with pytest.raises(DBAPIError, match="sealed position"), db_connection.begin_nested():
            db_connection.execute(plant)
        return
    db_connection.execute(plant)  # SQLite has no trigger: the sealer must cope
    runtime = runtime_of(app)
    with database.sessions() as session:
        signed = sealing.checkpoint(session, runtime.audit_signing_key, runtime.clock)
    assert signed is not None
    assert signed.seq == 2
    with database.sessions() as session:
        assert sealing.unsigned(session).count == 0
        finding = sealing.verify(session, audit_public_keys(runtime)).finding
    assert finding is not None
    assert finding.seq == PLANTED_SEQ


def test_a_future_dated_event_is_flagged_and_does_not_make_later_ones_look_back_dated(
    app: Flask,
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    dev_token: Callable[..., str],
    clock: FakeClock,
) -> None:
    token = dev_token("auditor")
    requests(client, token, 1)
    seal(app, database)
    future = uuid.uuid4()
    forged = forged_event(future, clock) | {"recorded_at": clock() + timedelta(days=1)}
    db_connection.execute(insert(AuditEvent).values(**forged))
    seal(app, database)
    requests(client, token, 1)  # an honest event after it
    seal(app, database)
    with database.sessions() as session:
        flagged = sealing.verify(session, audit_public_keys(runtime_of(app))).flagged
    future_seq = db_connection.execute(
        select(AuditSeal.seq).where(AuditSeal.event_id == future)
    ).scalar_one()
    assert [(f.seq, f.flag) for f in flagged] == [(future_seq, "future")]
