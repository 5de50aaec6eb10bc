"""Unit of work: one session, one transaction, repositories that only flush.

When the request is audited, ``commit`` writes its audit event in the same transaction
first: the event and the change it records commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from referrals.audit.group import AuditGroup
from referrals.audit.recorder import AuditUnavailable, PendingAudit, record, record_many
from referrals.db.caseloads import CaseloadRepository, StaffRepository
from referrals.db.engine import read_only
from referrals.db.first_write import begin_at_first_write
from referrals.db.repositories import (
    OutboxRepository,
    ReferralRepository,
    RoutingRepository,
    UnitRepository,
)
from referrals.services.errors import Conflict

# Set in a session's ``info`` once it has written anything (a flush, or any statement that
# is not a SELECT): its audit event must then commit with that change, in its transaction.
WROTE = "referrals_wrote"


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush_context: UOWTransaction) -> None:
    session.info[WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[WROTE] = True


def _write(session: Session, events: Sequence[tuple[PendingAudit, int, datetime]]) -> None:
    """A batch of read events: one alone is the same single INSERT as any event, and
    commits alone when nothing before it began a transaction."""
    if len(events) == 1:
        record(session, *events[0], alone=True)
    else:
        record_many(session, events)


class UnitOfWork:
    session: Session
    referrals: ReferralRepository
    units: UnitRepository
    routing: RoutingRepository
    outbox: OutboxRepository
    staff: StaffRepository
    caseloads: CaseloadRepository

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        audit: PendingAudit | None = None,
        clock: Callable[[], datetime] | None = None,
        group: AuditGroup | None = None,
    ) -> None:
        self._sessions = sessions
        self.audit = audit
        self._clock = clock
        self._group = group

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        # On PostgreSQL a read needs no BEGIN and no COMMIT: the transaction begins at
        # the first write (referrals/db/first_write.py).
        begin_at_first_write(self.session)
        self.referrals = ReferralRepository(self.session)
        self.units = UnitRepository(self.session)
        self.routing = RoutingRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.staff = StaffRepository(self.session)
        self.caseloads = CaseloadRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Anything not committed explicitly is rolled back: a use case that fails
        # half-way leaves no half-written record.
        self.session.rollback()
        self.session.close()
        if isinstance(exc, StaleDataError):
            # A versioned UPDATE matched no row: another transaction changed the referral
            # between our read and our write.  That can surface at any flush, autoflush
            # included, so it is translated here, once, for every use case.
            raise Conflict("the referral was changed by someone else; read it again") from exc

    def commit(self) -> None:
        audit = self.audit if self.audit is not None and not self.audit.written else None
        # The change first: a lost race or a constraint surfaces as itself, and only a
        # failure to write the audit event below counts as the audit being unavailable.
        self.session.flush()
        if audit is not None and self._group is not None and not self.session.info.get(WROTE):
            # A read: nothing to commit but its audit event, which may share one INSERT
            # and one durable commit with concurrent reads (referrals/audit/group.py).
            now = self._clock() if self._clock else datetime.now(UTC)
            self._group.commit(self.session, audit, audit.success_status, now, _write)
            audit.written = True
            return
        if audit is not None:
            now = self._clock() if self._clock else datetime.now(UTC)
            try:
                record(self.session, audit, audit.success_status, now)
            except SQLAlchemyError as exc:
                raise AuditUnavailable from exc
        self.session.commit()
        if audit is not None:
            audit.written = True

    def reading(self) -> Session:
        """A second, read-only session for a long read beside this unit of work.

        On SQLite the unit of work holds the write lock from its first statement; a read
        of the whole audit chain there would make every writer wait for it."""
        return read_only(self._sessions())

    def audit_disclosed(self, referral_ids: Iterable[uuid.UUID]) -> None:
        """Name every referral the answer will disclose, for their access logs."""
        if self.audit is not None:
            self.audit.disclose(referral_ids)

    def audit_target(self, kind: str, identifier: object) -> None:
        """Name what the request acted on once it is known (e.g. a new referral's id)."""
        if self.audit is not None:
            self.audit.target(kind, identifier)
