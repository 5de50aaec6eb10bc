"""Decision deadlines: when a submitted referral must have been accepted or declined.

Deadlines are computed once, at submission, and stored as ``due_at``; a later policy change
therefore never moves the deadline of a referral already sent.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from referrals.domain.codes import Priority, Status


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long the receiving unit has to decide, per priority."""

    urgent: timedelta = timedelta(days=3)
    # Swedish practice for reports about children: a decision within 14 days.
    normal: timedelta = timedelta(days=14)
    # "Same day" for acute referrals means the calendar day where the units work.
    timezone: str = "Europe/Stockholm"

    def __post_init__(self) -> None:
        # Fail when the policy is built (at app start), not on the first acute referral.
        ZoneInfo(self.timezone)
        if self.urgent <= timedelta(0) or self.normal <= timedelta(0):
            raise ValueError("deadline offsets must be positive")

    def due_at(self, priority: Priority, submitted_at: datetime) -> datetime:
        """The deadline for a referral of ``priority`` submitted at ``submitted_at``, in UTC.

        Acute: the last microsecond of the local calendar day of submission. Urgent and
        normal: elapsed time, added in UTC so that the result does not depend on the time zone
        the caller happened to use and a DST change neither adds nor removes an hour.
        """
        _require_aware(submitted_at, "submitted_at")
        if priority is Priority.ACUTE:
            zone = ZoneInfo(self.timezone)
            local_day = submitted_at.astimezone(zone).date()
            return datetime.combine(local_day, time.max, tzinfo=zone).astimezone(UTC)
        offset = self.urgent if priority is Priority.URGENT else self.normal
        return submitted_at.astimezone(UTC) + offset


def is_overdue(due_at: datetime | None, status: Status, now: datetime) -> bool:
    """True while a decision is pending (status requested) and its deadline has passed."""
    if due_at is None or status is not Status.REQUESTED:
        return False
    # A naive datetime here usually means a database driver dropped the zone; say so clearly.
    _require_aware(due_at, "due_at")
    _require_aware(now, "now")
    return now > due_at


def _require_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
