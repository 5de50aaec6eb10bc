"""Everything ``create_app`` builds once and every request shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from referrals.auth.authenticate import Authenticator
from referrals.config import Settings
from referrals.db.engine import Database
from referrals.domain.deadlines import DeadlinePolicy
from referrals.services.uow import UnitOfWork

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    instance_path: Path
    database: Database
    authenticator: Authenticator
    deadlines: DeadlinePolicy
    clock: Clock = utc_now

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.database.sessions)
