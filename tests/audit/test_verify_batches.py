"""The verifier's batches on PostgreSQL (``sealing.chain_batch``, the server's text for ids
and times) against its row-by-row path: the same result, honest or tampered, and every
tampering still named at its sequence number.

On SQLite both runs are the row-by-row path (the batches are PostgreSQL's only); the
tests run there as well, so the two databases are held to the same findings."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, insert, select, text, update

from referrals.audit import chain, sealing
from referrals.db.engine import Database
from referrals.runtime import Runtime, audit_public_keys


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


@pytest.fixture
def sealed(
    app: Flask, client: FlaskClient, database: Database, dev_token: Callable[..., str]
) -> int:
    """Creates, reads, a denied read and lists (events that disclose referrals), sealed
    with a checkpoint in the middle.  Returns the chain's length."""
    worker = {"Authorization": f"Bearer {dev_token('youth_worker', 'ungdomsjouren')}"}
    other = {"Authorization": f"Bearer {dev_token('caseworker', 'sodermalm')}"}
    runtime = runtime_of(app)
    for round_ in range(2):
        ids = []
        for _ in range(3):
            created = client.post(
                "/api/v1/referrals", json={"categories": ["drugs"]}, headers=worker
            )
            assert created.status_code == 201
            ids.append(created.json["id"])
        for rid in ids:
            assert client.get(f"/api/v1/referrals/{rid}", headers=worker).status_code == 200
            assert client.get(f"/api/v1/referrals/{rid}", headers=other).status_code == 404
        assert client.get("/api/v1/referrals", headers=worker).status_code == 200
        with database.sessions() as session:
            sealing.seal_pending(session, runtime.clock)
        if round_ == 0:
            with database.sessions() as session:
                assert sealing.checkpoint(session, runtime.audit_signing_key, runtime.clock)
    with database.sessions() as session:
        length = session.scalar(text("SELECT max(seq) FROM audit_seals"))
        disclosing = session.scalar(text("SELECT count(*) FROM audit_event_targets"))
    assert disclosing >= 6
    return int(length)


def both_ways(
    app: Flask, database: Database, monkeypatch: pytest.MonkeyPatch
) -> tuple[sealing.Verification, sealing.Verification]:
    """The verification in batches of 4 (several batches, and the chain's end inside one)
    and the same row by row, as on SQLite or with columns of another type."""
    monkeypatch.setattr(sealing, "VERIFY_BATCH", 4)
    keys = audit_public_keys(runtime_of(app))
    with database.sessions() as session:
        batched = sealing.verify(session, keys)
    with monkeypatch.context() as patched:
        patched.setattr(sealing, "_server_text_is_exact", lambda session: False)
        with database.sessions() as session:
            one_by_one = sealing.verify(session, keys)
    return batched, one_by_one


def _event_at(connection: Connection, seq: int) -> str:
    return str(
        connection.execute(
            text("SELECT event_id FROM audit_seals WHERE seq = :seq"), {"seq": seq}
        ).scalar_one()
    )


def _as_attacker(connection: Connection, backend: str) -> None:
    if backend == "postgresql":  # the triggers refuse; a superuser attacker disables them
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")


def test_an_honest_chain_verifies_the_same_in_batches(
    app: Flask,
    database: Database,
    sealed: int,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified: list[bytes | None] = []
    batch = sealing.chain_batch

    def spied(rows: Any, seq: int, previous: bytes) -> bytes | None:
        verified.append(batch(rows, seq, previous))
        return verified[-1]

    monkeypatch.setattr(sealing, "chain_batch", spied)
    batched, one_by_one = both_ways(app, database, monkeypatch)
    assert batched == one_by_one
    assert batched.ok
    assert (batched.sealed, batched.checkpoints, batched.flagged) == (sealed, 1, ())
    # On PostgreSQL every batch was verified whole (none fell back to the row-by-row path).
    expected = (sealed + 3) // 4 if backend == "postgresql" else 0
    assert len(verified) == expected
    assert None not in verified


TAMPERING = {
    # name: (SQL run on the event at the seq, the seq)
    "a status": ("UPDATE audit_events SET http_status = http_status + 1 WHERE id = :id", 3),
    "a time, by a microsecond": ("", 6),  # through the column's type: see below
    "roles that are not a list": ("UPDATE audit_events SET roles = '{\"a\": 1}' WHERE id = :id", 9),
    "an actor's name": ("UPDATE audit_events SET actor_subject = 'mallory' WHERE id = :id", 11),
    "a reason added": ("UPDATE audit_events SET reason = 'CHG-1' WHERE id = :id", 13),
    "a flag added": ("UPDATE audit_seals SET flag = 'backdated' WHERE event_id = :id", 10),
    "a stored hash": ("UPDATE audit_seals SET hash = :zero WHERE event_id = :id", 5),
    "a disclosure added": (
        "INSERT INTO audit_event_targets (event_id, referral_id) VALUES (:id, :referral)",
        14,
    ),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_tampering_is_named_at_its_seq_in_batches_as_row_by_row(
    app: Flask,
    database: Database,
    db_connection: Connection,
    sealed: int,
    backend: str,
    tampering: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement, seq = TAMPERING[tampering]
    _as_attacker(db_connection, backend)
    event_id = _event_at(db_connection, seq)
    if backend == "sqlite":  # SQLite stores the UUIDs as 32 hex digits
        event_id = uuid.UUID(event_id).hex
    parameters = {"id": event_id, "zero": bytes(32), "referral": uuid.uuid4().hex}
    if statement:
        db_connection.execute(text(statement), parameters)
    else:
        events = sealing.EVENTS
        identifier = uuid.UUID(event_id)
        moment = db_connection.execute(
            select(events.c.recorded_at).where(events.c.id == identifier)
        ).scalar_one()
        db_connection.execute(
            update(events)
            .where(events.c.id == identifier)
            .values(recorded_at=moment + timedelta(microseconds=1))
        )
    batched, one_by_one = both_ways(app, database, monkeypatch)
    assert batched == one_by_one
    assert batched.finding is not None
    assert (batched.finding.seq, batched.finding.problem) == (seq, "altered")
    assert batched.sealed == min(sealed, (seq + 3) // 4 * 4)  # the batches read up to it


def test_a_deleted_event_is_missing_in_batches_as_row_by_row(
    app: Flask,
    database: Database,
    db_connection: Connection,
    sealed: int,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _as_attacker(db_connection, backend)
    event_id = _event_at(db_connection, 7)
    db_connection.execute(text("DELETE FROM audit_seals WHERE seq = 7"))
    db_connection.execute(
        text("DELETE FROM audit_event_targets WHERE event_id = :id"), {"id": event_id}
    )
    batched, one_by_one = both_ways(app, database, monkeypatch)
    assert batched == one_by_one
    assert batched.finding == chain.Finding(7, "missing", "no event at seq 7")


@pytest.mark.postgres_only
def test_the_servers_text_is_what_str_and_isoformat_give(db_connection: Connection) -> None:
    """``SERVER_TEXT``'s id and time are the canonical form's own text, at the edges too;
    a time Python cannot hold (BC, or after 9999) is NULL, not a year without its era."""
    moments = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 26, 53, 5, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # a clock change in Stockholm
    ]
    db_connection.exec_driver_sql("SET LOCAL TimeZone = 'Europe/Stockholm'")
    ids = [uuid.uuid4() for _ in moments] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    rows = [
        {
            "id": identifier,
            "recorded_at": moment,
            "request_id": "r",
            "actor_verified": True,
            "roles": [],
            "action": "referral:read",
            "outcome": "allowed",
            "http_status": 200,
        }
        for identifier, moment in zip(ids, [*moments, *moments[:2]], strict=True)
    ]
    db_connection.execute(insert(sealing.EVENTS), rows)
    columns = {column.name: column for column in sealing.SERVER_TEXT}
    found = dict(db_connection.execute(select(columns["id"], columns["recorded_at"])).all())
    for row in rows:
        moment = row["recorded_at"].astimezone(UTC).replace(tzinfo=None)
        assert found[str(row["id"])] == moment.isoformat(timespec="microseconds")
    for era in ["0044-03-15 12:00:00+00 BC", "10000-01-01 00:00:00+00"]:
        db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        db_connection.execute(
            text("UPDATE audit_events SET recorded_at = CAST(:t AS timestamptz) WHERE id = :id"),
            {"t": era, "id": ids[0]},
        )
        time = db_connection.execute(
            select(columns["recorded_at"]).where(sealing.EVENTS.c.id == ids[0])
        ).scalar_one()
        assert time is None


@pytest.mark.postgres_only
def test_a_time_outside_pythons_years_is_altered_not_a_crash(
    app: Flask, database: Database, db_connection: Connection, sealed: int
) -> None:
    """Before the server's text, such a row stopped the verifier with the driver's error."""
    db_connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    db_connection.execute(
        text("UPDATE audit_events SET recorded_at = '2026-03-14 09:00:00+00 BC' WHERE id = :id"),
        {"id": _event_at(db_connection, 4)},
    )
    with database.sessions() as session:
        finding = sealing.verify(session, audit_public_keys(runtime_of(app))).finding
    assert finding == chain.Finding(4, "altered", chain.UNHASHABLE)


@pytest.mark.postgres_only
def test_a_column_of_another_type_is_read_row_by_row(
    app: Flask, database: Database, db_connection: Connection, sealed: int
) -> None:
    """The server formats the time only while the column is ``timestamptz``: one changed to
    a time without a zone (the same digits in another zone's reading) is read as the typed
    column, and its naive times cannot be hashed, as before the batches."""
    with database.sessions() as session:
        assert sealing._server_text_is_exact(session)
    db_connection.exec_driver_sql(
        "ALTER TABLE audit_events ALTER COLUMN recorded_at TYPE timestamp"
        " USING recorded_at AT TIME ZONE 'UTC'"
    )
    with database.sessions() as session:
        assert not sealing._server_text_is_exact(session)
        finding = sealing.verify(session, audit_public_keys(runtime_of(app))).finding
    assert finding == chain.Finding(1, "altered", chain.UNHASHABLE)
