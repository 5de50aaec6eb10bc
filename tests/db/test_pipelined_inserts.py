"""A create's new rows go to PostgreSQL in one round trip (``referrals.db.inserts.pipelined``).

The INSERTs of the referral, its timeline events and its outbox message are sent without
waiting for each answer, and the answers are read together at the end of the block.  What
must hold, and is attacked here on real PostgreSQL:

- they are sent in pipeline mode, and the audit event after them is not (it is written,
  and committed, as before);
- a statement the database refuses part-way through the block stores nothing: not the
  rows sent before it, not the rows after it, and no audit event claiming the create;
- the refusal surfaces as the same SQLAlchemy error an INSERT sent alone would raise,
  so the API answers exactly as it did;
- the connection goes back to the pool usable, out of pipeline mode.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from psycopg import pq
from psycopg._pipeline_base import BasePipeline
from psycopg.errors import UniqueViolation
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from referrals.db.engine import Database
from referrals.db.inserts import pipelined
from referrals.db.models import AuditEvent, OutboxMessage, Referral, TimelineEvent, Unit
from tests.api.helpers import REFERRALS, Actors, referral_body
from tests.support.statements import sent_statements

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def pipelined_or_not(connection: Any, statement: str) -> tuple[str, bool]:
    """A statement's head, with whether its connection was in pipeline mode."""
    pgconn = connection.connection.driver_connection.pgconn
    return statement.split("(")[0].strip(), pgconn.pipeline_status != pq.PipelineStatus.OFF


def stored(database: Database) -> dict[str, int]:
    with database.engine.connect() as other:
        return {
            model.__tablename__: int(other.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Referral, TimelineEvent, OutboxMessage)
        }


def created_events(database: Database) -> int:
    with database.engine.connect() as other:
        return int(
            other.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "referral:create", AuditEvent.outcome == "allowed")
            )
            or 0
        )


def test_a_create_sends_its_new_rows_in_one_pipeline_and_its_audit_event_after(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    with sent_statements(committed_database.engine, pipelined_or_not) as sent:
        response = live_app.test_client().post(
            REFERRALS, json=referral_body(submit=True), headers=actors.worker
        )
    assert response.status_code == 201, response.get_json()
    inserts = [(head, piped) for head, piped in sent if head.startswith("INSERT")]
    assert inserts == [
        ("INSERT INTO referrals", True),
        ("INSERT INTO timeline_events", True),
        ("INSERT INTO outbox", True),
        ("INSERT INTO audit_events", False),
    ]
    assert stored(committed_database) == {"referrals": 1, "timeline_events": 2, "outbox": 1}


def test_the_new_rows_wait_for_the_server_twice(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    """BEGIN, which psycopg always waits for (inside a pipeline by an early sync), and
    the sync that ends the block.  Nothing else may sync early: leaving autocommit inside
    the pipeline (``first_write.begin_now`` leaves it before) and a nested pipeline
    (psycopg's executemany opens one; several rows go as one VALUES list) each would.
    Counted at psycopg's own early-sync step, ``BasePipeline._sync_gen``."""
    early_syncs = 0
    original = BasePipeline._sync_gen

    def counting(self: BasePipeline) -> Any:
        nonlocal early_syncs
        early_syncs += 1
        return original(self)

    with mock.patch.object(BasePipeline, "_sync_gen", counting):
        response = live_app.test_client().post(
            REFERRALS, json=referral_body(submit=True), headers=actors.worker
        )
    assert response.status_code == 201, response.get_json()
    assert early_syncs == 1  # BEGIN's


def test_a_refused_row_part_way_through_the_pipeline_stores_nothing(
    live_app: Flask, committed_database: Database, actors: Actors
) -> None:
    """The outbox message is the last of the three: the referral and its timeline were
    sent before it, and must not survive its refusal."""
    with committed_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE outbox ADD CONSTRAINT test_no_messages CHECK (false) NOT VALID"
        )
    try:
        client = live_app.test_client()
        response = client.post(REFERRALS, json=referral_body(submit=True), headers=actors.worker)
        # The same connection pool serves the next request: out of pipeline mode, usable.
        draft = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
    finally:
        with committed_database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE outbox DROP CONSTRAINT test_no_messages")

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert draft.status_code == 201, draft.get_json()  # a draft sends no outbox message
    assert stored(committed_database) == {"referrals": 1, "timeline_events": 1, "outbox": 0}
    assert created_events(committed_database) == 1  # the draft's


# The same unit twice: the second INSERT breaks the primary key.
TWICE = (
    "INSERT INTO units (id, name, kind, districts, webhook_enabled, created_at, updated_at)"
    " VALUES ('test-twice', 'Twice', 'referrer', '[]', false, now(), now())"
)


# Another unit (its own id and name), for a second statement that would succeed.
OTHER = TWICE.replace("test-twice", "test-other").replace("'Twice'", "'Other'")


def insert_twice(session: Session, *, piped: bool) -> None:
    connection = session.connection()
    if piped:
        with pipelined(session):
            connection.exec_driver_sql(TWICE)
            connection.exec_driver_sql(TWICE)
    else:
        connection.exec_driver_sql(TWICE)
        connection.exec_driver_sql(TWICE)


def test_a_refusal_in_the_pipeline_is_the_error_an_insert_alone_raises(
    committed_database: Database,
) -> None:
    raised = {}
    for piped in (False, True):
        with committed_database.sessions() as session:
            with pytest.raises(IntegrityError) as refused:
                insert_twice(session, piped=piped)
            raised[piped] = type(refused.value.orig)
            session.rollback()
            # Usable afterwards: out of pipeline mode, the failed transaction ended.
            assert session.scalar(select(func.count()).select_from(Unit)) is not None
    assert raised[False] is UniqueViolation  # the second row, not the first
    assert raised[True] is raised[False]


def lose_the_server_between_two(session: Session, database: Database, *, piped: bool) -> None:
    connection = session.connection()
    with pipelined(session) if piped else nullcontext():
        connection.exec_driver_sql(TWICE)
        pid = connection.connection.dbapi_connection.info.backend_pid
        with database.engine.connect() as killer:
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        time.sleep(0.3)  # the server closes the socket
        connection.exec_driver_sql(OTHER)


def test_a_connection_lost_inside_the_pipeline_is_a_lost_connection(
    committed_database: Database,
) -> None:
    """The server goes away between two pipelined statements: the error is SQLAlchemy's
    OperationalError, as without a pipeline (the API answers it 503, database busy), not
    whatever tidying up the block raises on the invalidated connection."""
    raised = {}
    for piped in (False, True):
        with committed_database.sessions() as session:
            with pytest.raises(DBAPIError) as lost:
                lose_the_server_between_two(session, committed_database, piped=piped)
            raised[piped] = type(lost.value)
    assert raised[False] is OperationalError
    assert raised[True] is OperationalError
