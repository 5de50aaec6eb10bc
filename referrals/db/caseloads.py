"""Who is staff of a unit, and whole caseloads moved at once.  Flush only, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from referrals.db.models import Referral, TimelineEvent, UnitStaff

TIMELINE = cast(Table, TimelineEvent.__table__)
# Seen again within this long, a staff member's ``last_seen_at`` is not rewritten: a
# read must not turn into a write on every request.
SEEN_PRECISION = timedelta(hours=1)


@dataclass(frozen=True)
class StaffIdentity:
    issuer: str
    subject: str


@dataclass(frozen=True)
class Move:
    """One caseload move: whose open referrals of which unit go to whom."""

    unit_id: str
    issuer: str
    from_subject: str
    to_subject: str
    statuses: tuple[str, ...]


class StaffRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def seen(self, unit_id: str, who: StaffIdentity, role: str, now: datetime) -> None:
        """Remember that ``who`` acted for ``unit_id`` as ``role``.

        Usually one SELECT: someone seen within the hour in the same role is left alone,
        so a read stays a read (on SQLite a write would take the database's write lock).
        Otherwise INSERT ... ON CONFLICT DO NOTHING, so two first requests of one person at
        once cannot fail each other, and the last-seen time and role."""
        known = self.session.execute(
            select(UnitStaff.role, UnitStaff.last_seen_at).where(
                UnitStaff.unit_id == unit_id,
                UnitStaff.issuer == who.issuer,
                UnitStaff.subject == who.subject,
            )
        ).first()
        if known is not None and known.role == role and known.last_seen_at >= now - SEEN_PRECISION:
            return
        values: dict[str, Any] = {
            "unit_id": unit_id,
            "issuer": who.issuer,
            "subject": who.subject,
            "role": role,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        dialect = self.session.get_bind().dialect.name
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(dialect_insert(UnitStaff).values(values).on_conflict_do_nothing())
        self.session.execute(
            update(UnitStaff)
            .where(
                UnitStaff.unit_id == unit_id,
                UnitStaff.issuer == who.issuer,
                UnitStaff.subject == who.subject,
                (UnitStaff.last_seen_at < now - SEEN_PRECISION) | (UnitStaff.role != role),
            )
            .values(last_seen_at=now, role=role)
            .execution_options(synchronize_session=False)
        )

    def get(self, unit_id: str, who: StaffIdentity) -> UnitStaff | None:
        return self.session.get(UnitStaff, (unit_id, who.issuer, who.subject))

    def of_unit(self, unit_id: str) -> Sequence[UnitStaff]:
        return self.session.scalars(
            select(UnitStaff).where(UnitStaff.unit_id == unit_id).order_by(UnitStaff.subject)
        ).all()


class CaseloadRepository:
    """Set-based statements: a caseload of a thousand referrals is a handful of round
    trips, not a thousand (tests/benchmarks/bench_reassign.py)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def held(self, move: Move) -> list[uuid.UUID]:
        """The referrals ``move`` would take, in id order (as ``move`` reports them)."""
        return list(
            self.session.scalars(select(Referral.id).where(_held_by(move)).order_by(Referral.id))
        )

    def move(self, move: Move, now: datetime) -> list[tuple[uuid.UUID, str]]:
        """One UPDATE of every referral in the caseload; the ids it moved, with status.

        The version goes up as the ORM's would, so a client's stale ``If-Match`` and a
        transition racing this one both notice.  On PostgreSQL the UPDATE locks the rows,
        so no other transition can add a timeline event to them before ours."""
        moved = self.session.execute(
            update(Referral)
            .where(_held_by(move))
            .values(
                assignee=move.to_subject,
                assignee_issuer=move.issuer,
                version=Referral.version + 1,
                updated_at=now,
            )
            .returning(Referral.id, Referral.status)
            .execution_options(synchronize_session=False)
        ).all()
        return sorted(((referral_id, status) for referral_id, status in moved), key=_by_id)

    def next_positions(self, referral_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The position each referral's next timeline event takes."""
        if not referral_ids:
            return {}
        rows = self.session.execute(
            select(TimelineEvent.referral_id, func.max(TimelineEvent.position))
            .where(TimelineEvent.referral_id.in_(referral_ids))
            .group_by(TimelineEvent.referral_id)
        )
        last = {referral_id: position or 0 for referral_id, position in rows}
        return {referral_id: last.get(referral_id, 0) + 1 for referral_id in referral_ids}

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """One Core executemany, not an ORM object per event.  (A single multi-row
        ``VALUES`` of 1,000 events measured about four times slower in
        tests/benchmarks/bench_reassign.py than this, which psycopg sends as one
        pipelined batch.)"""
        if events:
            self.session.execute(insert(TIMELINE), events)


def _by_id(moved: tuple[uuid.UUID, str]) -> str:
    # The text form orders as both databases order uuids: dry run and move list alike.
    return str(moved[0])


def _held_by(move: Move) -> Any:
    return and_(
        Referral.receiving_unit_id == move.unit_id,
        Referral.assignee == move.from_subject,
        Referral.assignee_issuer == move.issuer,
        Referral.status.in_(move.statuses),
        Referral.erased_at.is_(None),
    )
