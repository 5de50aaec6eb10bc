"""Retention periods (gallring): how long a closed referral is kept before its personal
data is crypto-shredded.  Pure rules; the settings give the numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from referrals.domain.codes import Status

# The statuses retention applies to: the final ones, and drafts never submitted.
RETAINED_STATUSES: tuple[Status, ...] = (
    Status.REJECTED,
    Status.CANCELLED,
    Status.ENTERED_IN_ERROR,
    Status.COMPLETED,
    Status.FAILED,
    Status.DRAFT,
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each status is kept after the referral reached it (a draft: its last change)."""

    days: Mapping[Status, int]

    def __post_init__(self) -> None:
        if set(self.days) != set(RETAINED_STATUSES):
            raise ValueError("a retention period is needed for every retained status")
        if any(d < 1 for d in self.days.values()):
            raise ValueError("retention periods are at least one day")

    def period(self, status: str) -> timedelta | None:
        """None for an open referral: it is never due while it is being worked on."""
        days = self.days.get(Status(status))
        return timedelta(days=days) if days is not None else None

    def due_at(self, status: str, since: datetime) -> datetime | None:
        period = self.period(status)
        return since + period if period is not None else None

    def cutoffs(self, moment: datetime) -> dict[Status, datetime]:
        """Per status, the latest start of the clock that is due at ``moment``."""
        return {status: moment - timedelta(days=d) for status, d in self.days.items()}
