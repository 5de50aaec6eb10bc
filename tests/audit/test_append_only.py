"""PostgreSQL: the audit tables are append-only (SECURITY.md: Audit trail, migration 0003).

A trigger refuses UPDATE, DELETE and TRUNCATE on ``audit_events``, ``audit_seals`` and
``audit_checkpoints`` for every role.  Each statement runs in a savepoint of the test's
rolled-back transaction, so one refusal does not poison the next statement, and the rows
are compared before and after: nothing was changed.

SQLite has no such trigger; the design enforces this on PostgreSQL only, so these tests
are not generated for SQLite.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.postgres_only

TABLES = ("audit_events", "audit_seals", "audit_checkpoints")
ORDER_BY = {"audit_events": "id", "audit_seals": "seq", "audit_checkpoints": "seq"}

# Each statement must be refused by the append-only trigger.  TRUNCATE of audit_events
# alone is refused earlier, by the foreign keys from audit_seals and audit_refusal_tallies;
# with CASCADE (or with those tables in the same statement) it reaches the trigger.
REFUSED: list[tuple[str, str]] = [
    ("audit_events", "UPDATE audit_events SET outcome = 'allowed'"),
    ("audit_events", "UPDATE audit_events SET http_status = 200 WHERE id = :event_id"),
    ("audit_events", "DELETE FROM audit_events"),
    ("audit_events", "DELETE FROM audit_events WHERE id = :event_id"),
    ("audit_events", "TRUNCATE audit_events CASCADE"),
    # With every table that refers to it in the same statement (audit_event_targets and
    # audit_refusal_tallies), it reaches the trigger.
    (
        "audit_events",
        "TRUNCATE audit_events, audit_seals, audit_event_targets, audit_refusal_tallies",
    ),
    ("audit_seals", "UPDATE audit_seals SET hash = :forged"),
    ("audit_seals", "DELETE FROM audit_seals"),
    ("audit_seals", "TRUNCATE audit_seals"),
    ("audit_checkpoints", "UPDATE audit_checkpoints SET signature = :forged"),
    ("audit_checkpoints", "DELETE FROM audit_checkpoints"),
    ("audit_checkpoints", "TRUNCATE audit_checkpoints"),
]


def contents(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [
            tuple(row)
            for row in connection.execute(
                text(f"SELECT * FROM {table} ORDER BY {ORDER_BY[table]}")  # noqa: S608 (own names)
            )
        ]
        for table in TABLES
    }


def audited_request(client: FlaskClient, dev_token: Callable[..., str]) -> None:
    response = client.get(
        "/api/v1/units", headers={"Authorization": f"Bearer {dev_token('caseworker', 'norrmalm')}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def seal_and_checkpoint(connection: Connection) -> uuid.UUID:
    """A seal for the newest event and a checkpoint over it (plain INSERTs are allowed)."""
    event_id = connection.execute(
        text("SELECT id FROM audit_events ORDER BY recorded_at DESC, id DESC LIMIT 1")
    ).scalar_one()
    seq = connection.execute(text("SELECT coalesce(max(seq), 0) + 1 FROM audit_seals")).scalar_one()
    now = datetime.now(UTC)
    connection.execute(
        text(
            "INSERT INTO audit_seals (seq, event_id, hash, sealed_at) "
            "VALUES (:seq, :event_id, :hash, :now)"
        ),
        {"seq": seq, "event_id": event_id, "hash": bytes(32), "now": now},
    )
    connection.execute(
        text(
            "INSERT INTO audit_checkpoints (seq, head, created_at, previous, key_id, signature) "
            "VALUES (:seq, :head, :now, NULL, 'test-key', :signature)"
        ),
        {"seq": seq, "head": bytes(32), "now": now, "signature": bytes(64)},
    )
    return uuid.UUID(str(event_id))


def assert_refused(connection: Connection, statement: str, params: dict[str, Any]) -> None:
    with pytest.raises(DBAPIError, match="append-only") as refused, connection.begin_nested():
        connection.execute(text(statement), params)
    assert "refused" in str(refused.value.orig)


def test_update_delete_and_truncate_of_audit_rows_are_refused(
    client: FlaskClient,
    db_connection: Connection,
    dev_token: Callable[..., str],
    subtests: pytest.Subtests,
) -> None:
    audited_request(client, dev_token)
    event_id = seal_and_checkpoint(db_connection)
    before = contents(db_connection)
    assert all(before[table] for table in TABLES), "every table has a row to protect"
    params = {"event_id": event_id, "forged": b"\x01" * 32}

    for table, statement in REFUSED:
        with subtests.test(msg=f"{table}: {statement}"):
            assert_refused(db_connection, statement, params)
    # The statements without CASCADE or the seals table: refused all the same.
    with (
        subtests.test(msg="TRUNCATE audit_events"),
        pytest.raises(DBAPIError),
        db_connection.begin_nested(),
    ):
        db_connection.exec_driver_sql("TRUNCATE audit_events")

    assert contents(db_connection) == before


def test_appending_is_still_allowed(
    client: FlaskClient, db_connection: Connection, dev_token: Callable[..., str]
) -> None:
    """The trigger refuses changes, not new rows: requests keep being recorded."""
    audited_request(client, dev_token)
    count = db_connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    audited_request(client, dev_token)
    assert db_connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == (
        count + 1
    )
    seal_and_checkpoint(db_connection)


def test_a_role_with_every_privilege_is_refused_too(
    client: FlaskClient,
    db_connection: Connection,
    dev_token: Callable[..., str],
    subtests: pytest.Subtests,
) -> None:
    """Not only the owner: an application role granted ALL on the tables (as when the
    ``db harden`` step was never run) still cannot change a row.  The role exists only
    inside this test's rolled-back transaction."""
    audited_request(client, dev_token)
    event_id = seal_and_checkpoint(db_connection)
    before = contents(db_connection)
    role = f"referrals_app_test_{secrets.token_hex(4)}"
    db_connection.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
    # With the tables that reference audit_events, so that CASCADE reaches the trigger.
    granted = ", ".join((*TABLES, "audit_event_targets", "audit_refusal_tallies"))
    db_connection.exec_driver_sql(f"GRANT ALL ON {granted} TO {role}")
    db_connection.exec_driver_sql(f"SET LOCAL ROLE {role}")
    params = {"event_id": event_id, "forged": b"\x01" * 32}

    assert db_connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one() >= 1
    for table, statement in REFUSED:
        with subtests.test(msg=f"{table} as {role}: {statement}"):
            assert_refused(db_connection, statement, params)

    db_connection.exec_driver_sql("RESET ROLE")
    assert contents(db_connection) == before
