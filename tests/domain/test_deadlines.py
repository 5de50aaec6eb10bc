"""Decision deadlines, including acute referrals around midnight and DST in Stockholm."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from referrals.domain.codes import Priority, Status
from referrals.domain.deadlines import DeadlinePolicy, is_overdue

STOCKHOLM = ZoneInfo("Europe/Stockholm")
POLICY = DeadlinePolicy()


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def end_of_day_utc(hour: int, year: int, month: int, day: int) -> datetime:
    """23:59:59.999999 local time, which is ``hour``:59 UTC (22 in winter, 21 in summer)."""
    return datetime(year, month, day, hour, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("submitted_at", "due_at"),
    [
        # Winter (CET, UTC+1): local midnight is 23:00 UTC.
        (utc(2025, 1, 15, 9, 0), end_of_day_utc(22, 2025, 1, 15)),
        (utc(2025, 1, 15, 22, 59, 59, 999999), end_of_day_utc(22, 2025, 1, 15)),
        (utc(2025, 1, 15, 23, 0), end_of_day_utc(22, 2025, 1, 16)),  # already the 16th locally
        # Summer (CEST, UTC+2): local midnight is 22:00 UTC.
        (utc(2025, 7, 1, 21, 59), end_of_day_utc(21, 2025, 7, 1)),
        (utc(2025, 7, 1, 22, 0), end_of_day_utc(21, 2025, 7, 2)),
        # 30 March 2025: clocks go forward, the day starts in CET and ends in CEST.
        (utc(2025, 3, 29, 23, 0), end_of_day_utc(21, 2025, 3, 30)),
        (utc(2025, 3, 30, 0, 30), end_of_day_utc(21, 2025, 3, 30)),  # 01:30 CET
        (utc(2025, 3, 30, 1, 30), end_of_day_utc(21, 2025, 3, 30)),  # 03:30 CEST
        (utc(2025, 3, 29, 22, 59), end_of_day_utc(22, 2025, 3, 29)),  # eve, still CET
        # 26 October 2025: clocks go back, 02:00-03:00 local happens twice.
        (utc(2025, 10, 26, 0, 30), end_of_day_utc(22, 2025, 10, 26)),  # 02:30 CEST
        (utc(2025, 10, 26, 1, 30), end_of_day_utc(22, 2025, 10, 26)),  # 02:30 CET
        (utc(2025, 10, 25, 21, 59), end_of_day_utc(21, 2025, 10, 25)),  # eve, still CEST
    ],
)
def test_acute_is_due_at_the_end_of_the_local_day(submitted_at: datetime, due_at: datetime) -> None:
    result = POLICY.due_at(Priority.ACUTE, submitted_at)
    assert result == due_at
    assert result.tzinfo is UTC
    local = result.astimezone(STOCKHOLM)
    assert (local.hour, local.minute, local.second, local.microsecond) == (23, 59, 59, 999999)
    assert local.date() == submitted_at.astimezone(STOCKHOLM).date()


def test_acute_does_not_depend_on_the_callers_zone() -> None:
    moment = utc(2025, 3, 30, 1, 30)
    as_new_york = moment.astimezone(ZoneInfo("America/New_York"))  # still the 29th there
    assert POLICY.due_at(Priority.ACUTE, as_new_york) == POLICY.due_at(Priority.ACUTE, moment)


@pytest.mark.parametrize(
    ("priority", "elapsed"),
    [(Priority.URGENT, timedelta(days=3)), (Priority.NORMAL, timedelta(days=14))],
)
def test_urgent_and_normal_add_elapsed_time(priority: Priority, elapsed: timedelta) -> None:
    submitted_at = utc(2025, 3, 28, 12, 0)  # across the spring DST change
    result = POLICY.due_at(priority, submitted_at)
    assert result == submitted_at + elapsed
    assert result - submitted_at == elapsed
    assert result.tzinfo is UTC
    local = submitted_at.astimezone(STOCKHOLM)
    assert POLICY.due_at(priority, local) == result


def test_custom_offsets() -> None:
    policy = DeadlinePolicy(urgent=timedelta(hours=24), normal=timedelta(days=7))
    submitted_at = utc(2025, 5, 1, 8, 0)
    assert policy.due_at(Priority.URGENT, submitted_at) == utc(2025, 5, 2, 8, 0)
    assert policy.due_at(Priority.NORMAL, submitted_at) == utc(2025, 5, 8, 8, 0)


def test_custom_timezone_for_acute() -> None:
    policy = DeadlinePolicy(timezone="UTC")
    assert policy.due_at(Priority.ACUTE, utc(2025, 5, 1, 8, 0)) == end_of_day_utc(23, 2025, 5, 1)


@pytest.mark.parametrize("priority", Priority)
def test_naive_submitted_at_is_refused(priority: Priority) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.due_at(priority, datetime(2025, 5, 1, 8, 0))


def test_unknown_timezone_fails_when_the_policy_is_built() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        DeadlinePolicy(timezone="Europe/Atlantis")


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(days=-1)])
def test_non_positive_offsets_are_refused(offset: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        DeadlinePolicy(urgent=offset)
    with pytest.raises(ValueError, match="positive"):
        DeadlinePolicy(normal=offset)


DUE = utc(2025, 5, 1, 12, 0)


@pytest.mark.parametrize("status", Status)
def test_overdue_only_while_requested(status: Status) -> None:
    assert is_overdue(DUE, status, DUE + timedelta(seconds=1)) == (status is Status.REQUESTED)


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (DUE - timedelta(seconds=1), False),
        (DUE, False),
        (DUE + timedelta(microseconds=1), True),
        ((DUE + timedelta(hours=1)).astimezone(STOCKHOLM), True),
    ],
)
def test_overdue_boundary(now: datetime, overdue: bool) -> None:
    assert is_overdue(DUE, Status.REQUESTED, now) is overdue


def test_no_deadline_is_never_overdue() -> None:
    assert not is_overdue(None, Status.REQUESTED, DUE)


def test_naive_datetimes_are_refused_when_it_matters() -> None:
    with pytest.raises(ValueError, match="due_at"):
        is_overdue(datetime(2025, 5, 1, 12, 0), Status.REQUESTED, DUE)
    with pytest.raises(ValueError, match="now"):
        is_overdue(DUE, Status.REQUESTED, datetime(2025, 5, 1, 12, 0))
