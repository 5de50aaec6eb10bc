"""REFERRALS_RETENTION_*: periods per outcome, the worker's batch and interval."""

from __future__ import annotations

import pytest

from referrals.config import ConfigError, Settings
from referrals.domain.codes import Status
from referrals.domain.retention import RETAINED_STATUSES, RetentionPolicy

PERIODS = {
    "REFERRALS_RETENTION_REJECTED_DAYS": ("retention_rejected_days", Status.REJECTED),
    "REFERRALS_RETENTION_CANCELLED_DAYS": ("retention_cancelled_days", Status.CANCELLED),
    "REFERRALS_RETENTION_ENTERED_IN_ERROR_DAYS": (
        "retention_entered_in_error_days",
        Status.ENTERED_IN_ERROR,
    ),
    "REFERRALS_RETENTION_COMPLETED_DAYS": ("retention_completed_days", Status.COMPLETED),
    "REFERRALS_RETENTION_FAILED_DAYS": ("retention_failed_days", Status.FAILED),
    "REFERRALS_RETENTION_DRAFT_DAYS": ("retention_draft_days", Status.DRAFT),
}


def test_defaults() -> None:
    settings = Settings.from_env({"REFERRALS_ENV": "development"})
    assert {name: getattr(settings, name) for name, _ in PERIODS.values()} == {
        "retention_rejected_days": 365,
        "retention_cancelled_days": 365,
        "retention_entered_in_error_days": 90,
        "retention_completed_days": 730,
        "retention_failed_days": 730,
        "retention_draft_days": 30,
    }
    assert settings.retention_batch_size == 50
    assert settings.retention_interval == 300.0


def test_every_variable_is_read() -> None:
    environ = {variable: str(10 + i) for i, variable in enumerate(PERIODS)}
    environ |= {
        "REFERRALS_ENV": "development",
        "REFERRALS_RETENTION_BATCH_SIZE": "7",
        "REFERRALS_RETENTION_INTERVAL": "12.5",
    }
    settings = Settings.from_env(environ)
    for i, (name, _status) in enumerate(PERIODS.values()):
        assert getattr(settings, name) == 10 + i
    assert settings.retention_batch_size == 7
    assert settings.retention_interval == 12.5


@pytest.mark.parametrize("variable", sorted(PERIODS))
@pytest.mark.parametrize("value", ["0", "-5", "36501", "1.5", "a year", ""])
def test_periods_refuse_anything_but_whole_days_from_1_to_36500(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"REFERRALS_ENV": "development", variable: value})


def test_a_policy_needs_every_retained_status() -> None:
    days = dict.fromkeys(RETAINED_STATUSES, 30)
    assert RetentionPolicy(days).period("completed") is not None
    assert RetentionPolicy(days).period("accepted") is None  # open: never due
    with pytest.raises(ValueError, match="every retained status"):
        RetentionPolicy({s: d for s, d in days.items() if s is not Status.DRAFT})
    with pytest.raises(ValueError, match="at least one day"):
        RetentionPolicy({**days, Status.DRAFT: 0})
