"""Unit of work: one session, one transaction, repositories that only flush."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from referrals.db.repositories import ReferralRepository, UnitRepository
from referrals.services.errors import Conflict


class UnitOfWork:
    session: Session
    referrals: ReferralRepository
    units: UnitRepository

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.referrals = ReferralRepository(self.session)
        self.units = UnitRepository(self.session)
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
        self.session.commit()
