"""How new rows are written (``referrals.db.inserts.insert_rows``: COPY on PostgreSQL for
many rows, an INSERT otherwise): what an INSERT of each row would store, both ways, on
both databases."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from referrals.audit.actions import AuditAction
from referrals.audit.group import AuditGroup
from referrals.audit.recorder import AuditUnavailable, PendingAudit
from referrals.db.engine import Database
from referrals.db.inserts import COPY_FROM, insert_rows, pipelined
from referrals.db.models import Referral, TimelineEvent, Unit
from referrals.services.new_rows import NewRows
from referrals.services.uow import UnitOfWork

REFERRALS = cast(Table, Referral.__table__)
EVENTS = cast(Table, TimelineEvent.__table__)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def referral(created_by: str, **values: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "version": 1,
        "status": "draft",
        "sending_unit_id": "ungdomsjouren",
        "created_by": created_by,
        "priority": "normal",
        "created_at": NOW,
        "updated_at": NOW,
        **values,
    }


def add_referring_unit(session: Session) -> None:
    """The unit every referral here is sent from (the referrals' foreign key)."""
    session.execute(
        insert(cast(Table, Unit.__table__)),
        {
            "id": "ungdomsjouren",
            "name": "Ungdomsjouren",
            "kind": "referrer",
            "created_at": NOW,
            "updated_at": NOW,
        },
    )


# From the first row (COPY on PostgreSQL), never (an INSERT, several rows an
# executemany), or never and in a pipeline (PostgreSQL: several rows one VALUES list).
@pytest.mark.parametrize(
    ("copy_from", "piped"),
    [(1, False), (10**9, False), (10**9, True)],
    ids=["copy", "insert", "pipelined"],
)
def test_values_are_stored_as_given_and_unset_columns_take_their_defaults(
    database: Database, copy_from: int, piped: bool
) -> None:
    # Text that COPY's format escapes (tab, newline, backslash, "\N"), bytes, JSON, a
    # time in another zone, NULL; and columns left out that have Python-side defaults.
    awkward = "tab\there\nnew line \\ backslash \\N end, ümlaut"
    given = [
        referral(awkward, categories=["drugs", "violence"], dek_wrapped=b"\x00\t\n\\x"),
        referral("plain", consent_given_at=datetime.fromisoformat("2026-11-26T10:00+01:00")),
    ]
    given[1].pop("id")  # takes the column's default: a new id
    with database.sessions() as session:
        add_referring_unit(session)
        with pipelined(session) if piped else nullcontext():
            insert_rows(session, REFERRALS, [given[0]], copy_from=copy_from)
            insert_rows(session, REFERRALS, [given[1]], copy_from=copy_from)
        rows = {row.created_by: row for row in session.execute(select(REFERRALS)).all()}
        first, second = rows[awkward], rows["plain"]
        assert first.id == given[0]["id"]
        assert first.categories == ["drugs", "violence"]
        assert first.dek_wrapped == b"\x00\t\n\\x"
        assert first.consent_given_at is None
        assert first.created_at == NOW
        assert isinstance(second.id, uuid.UUID)
        assert second.categories == []  # the column's default
        assert second.consent_given_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        events = [
            {
                "referral_id": row.id,
                "position": 1,
                "at": NOW,
                "action": "create",
                "actor": row.created_by,
                "to_status": "draft",
            }
            for row in (first, second)
        ]
        with pipelined(session) if piped else nullcontext():
            insert_rows(session, EVENTS, events, copy_from=copy_from)  # ids: the default
        stored = session.execute(select(EVENTS.c.id, EVENTS.c.actor, EVENTS.c.reason_text)).all()
        assert sorted(row.actor for row in stored) == sorted([awkward, "plain"])
        assert len({row.id for row in stored}) == 2
        assert {row.reason_text for row in stored} == {None}


class NoSharedCommit(AuditGroup):
    """The reads' shared commit, which a transaction that wrote must never take: there,
    another reader's commit may carry the event while this session is rolled back."""

    def commit(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("new rows went to the reads' shared commit")


def test_new_rows_commit_with_their_own_audit_event(database: Database) -> None:
    # Enough rows for COPY on PostgreSQL, which the session's statement events never see.
    count = COPY_FROM + 4
    with database.sessions() as session:
        add_referring_unit(session)
        session.commit()
    pending = PendingAudit(
        action=AuditAction.REFERRALS_IMPORT, request_id="import-test", success_status=200
    )
    with UnitOfWork(database.sessions, audit=pending, group=NoSharedCommit()) as uow:
        new = NewRows(uow)
        for _ in range(count):
            row = Referral(**referral("new-rows"))
            row.events.append(
                TimelineEvent(
                    position=1, at=NOW, action="create", actor="new-rows", to_status="draft"
                )
            )
            new.session.add(row)
        new.insert()
        uow.commit()
    assert pending.written
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(REFERRALS)) == count
        assert session.scalar(select(func.max(REFERRALS.c.version))) == 1


# COPY (from COPY_FROM rows) and the pipeline (fewer): both write round the statement
# events that begin a transaction at its first write.
@pytest.mark.postgres_only
@pytest.mark.parametrize("count", [COPY_FROM + 4, 3], ids=["copy", "pipeline"])
def test_new_rows_never_commit_without_their_audit_event(
    committed_database: Database, count: int
) -> None:
    """On the engine itself, where a unit of work's transaction begins at its first write:
    the new rows are that first write, and an audit event the database refuses must take
    them back with it."""
    with committed_database.sessions() as session:
        add_referring_unit(session)
        session.commit()
    pending = PendingAudit(
        action=AuditAction.REFERRALS_IMPORT, request_id="import-refused", success_status=200
    )
    with committed_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE audit_events ADD CONSTRAINT test_no_import"
            " CHECK (action <> 'referrals:import') NOT VALID"
        )
    try:
        with UnitOfWork(committed_database.sessions, audit=pending, group=NoSharedCommit()) as uow:
            new = NewRows(uow)
            for _ in range(count):
                new.session.add(Referral(**referral("refused")))
            new.insert()
            with pytest.raises(AuditUnavailable):
                uow.commit()
    finally:
        with committed_database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE audit_events DROP CONSTRAINT test_no_import")
    with committed_database.engine.connect() as other:
        assert other.scalar(select(func.count()).select_from(REFERRALS)) == 0
