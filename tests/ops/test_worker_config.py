"""Worker and deadline settings, the retry policy they make, and ``referrals worker --once``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import ConfigError, Settings
from referrals.runtime import Runtime
from referrals.services.delivery import DeliveryPolicy
from tests.api.helpers import bearer, referral_body
from tests.ops.cli import run
from tests.support import standard_webhooks
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import WebhookReceiver

INTEGERS = (
    "REFERRALS_WEBHOOK_MAX_ATTEMPTS",
    "REFERRALS_WORKER_BATCH_SIZE",
    "REFERRALS_DEADLINE_URGENT_DAYS",
    "REFERRALS_DEADLINE_NORMAL_DAYS",
    "REFERRALS_OUTBOX_RETENTION_DAYS",
)
SECONDS = (
    "REFERRALS_WEBHOOK_TIMEOUT",
    "REFERRALS_WEBHOOK_BACKOFF_BASE",
    "REFERRALS_WEBHOOK_BACKOFF_CAP",
    "REFERRALS_WORKER_LEASE",
    "REFERRALS_WORKER_INTERVAL",
)


# --- Settings.from_env -----------------------------------------------------------------------


def test_worker_and_deadline_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_WEBHOOK_TIMEOUT": "2.5",
            "REFERRALS_WEBHOOK_MAX_ATTEMPTS": "4",
            "REFERRALS_WEBHOOK_BACKOFF_BASE": "10",
            "REFERRALS_WEBHOOK_BACKOFF_CAP": "600",
            "REFERRALS_WORKER_BATCH_SIZE": "50",
            "REFERRALS_WORKER_LEASE": "90",
            "REFERRALS_WORKER_INTERVAL": "0.25",
            "REFERRALS_DEADLINE_URGENT_DAYS": "2",
            "REFERRALS_DEADLINE_NORMAL_DAYS": " 10 ",
            "REFERRALS_OUTBOX_RETENTION_DAYS": "90",
        }
    )

    assert settings.webhook_timeout == 2.5
    assert settings.webhook_max_attempts == 4
    assert settings.webhook_backoff_base == 10.0
    assert settings.webhook_backoff_cap == 600.0
    assert settings.worker_batch_size == 50
    assert settings.worker_lease == 90.0
    assert settings.worker_interval == 0.25
    assert settings.deadline_urgent_days == 2
    assert settings.deadline_normal_days == 10
    assert settings.outbox_retention_days == 90


def test_worker_and_deadline_defaults() -> None:
    settings = Settings.from_env({"REFERRALS_ENV": "development"})

    assert settings.webhook_timeout == 5.0
    assert settings.webhook_max_attempts == 8
    assert settings.webhook_backoff_base == 30.0
    assert settings.worker_batch_size == 20
    assert settings.worker_lease is None
    assert settings.worker_interval == 1.0
    assert (settings.deadline_urgent_days, settings.deadline_normal_days) == (3, 14)
    assert settings.outbox_retention_days == 30


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "1e3", "0x10"])
@pytest.mark.parametrize("variable", INTEGERS)
def test_integer_settings_refuse_anything_but_a_positive_whole_number(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=variable) as refused:
        Settings.from_env({"REFERRALS_ENV": "development", variable: value})
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "nan", "inf", "-0.5"])
@pytest.mark.parametrize("variable", SECONDS)
def test_second_settings_refuse_anything_but_a_positive_number(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable) as refused:
        Settings.from_env({"REFERRALS_ENV": "development", variable: value})
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("variable", SECONDS)
def test_second_settings_accept_fractions(variable: str) -> None:
    name = variable.removeprefix("REFERRALS_").lower()
    assert (
        getattr(Settings.from_env({"REFERRALS_ENV": "development", variable: "1.5"}), name) == 1.5
    )


# --- the delivery policy -----------------------------------------------------------------------


def policy(jitter: float, **values: float) -> DeliveryPolicy:
    return DeliveryPolicy(jitter=lambda: jitter, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (5, 480.0), (6, 960.0)],
)
def test_retry_delay_doubles_per_attempt_with_equal_jitter(attempts: int, delay: float) -> None:
    # Jitter 0: the fixed half; jitter 1: the whole delay.
    assert policy(0.0).retry_delay(attempts) == timedelta(seconds=delay / 2)
    assert policy(1.0).retry_delay(attempts) == timedelta(seconds=delay)
    assert policy(0.5).retry_delay(attempts) == timedelta(seconds=delay * 3 / 4)


def test_retry_delay_is_capped() -> None:
    capped = policy(1.0, backoff_base=30.0, backoff_cap=100.0)
    assert capped.retry_delay(2) == timedelta(seconds=60)
    assert capped.retry_delay(3) == timedelta(seconds=100)
    assert capped.retry_delay(30) == timedelta(seconds=100)
    assert policy(0.0, backoff_base=30.0, backoff_cap=100.0).retry_delay(30) == timedelta(
        seconds=50
    )
    assert policy(1.0).retry_delay(60) == timedelta(hours=6)  # the default cap


def test_retry_delay_is_capped_however_many_attempts_were_allowed() -> None:
    """REFERRALS_WEBHOOK_MAX_ATTEMPTS has no upper bound, so a message may be on its
    1025th attempt (about 256 days of retries at the default 6 h cap).  The delay must
    stay at the cap there too: 2 ** 1024 does not fit a float, and an OverflowError in
    the worker after a failed POST would leave the message claimed and stop the loop."""
    generous = Settings.from_env(
        {"REFERRALS_ENV": "development", "REFERRALS_WEBHOOK_MAX_ATTEMPTS": "5000"}
    )
    assert generous.webhook_max_attempts == 5000
    for attempts in (1024, 1025, 5000):
        assert policy(1.0).retry_delay(attempts) == timedelta(hours=6), attempts


def test_retry_delay_never_falls_below_half_the_base() -> None:
    for attempts in (0, 1):
        assert policy(0.0, backoff_base=8.0).retry_delay(attempts) == timedelta(seconds=4)


@pytest.mark.parametrize(("batch_size", "timeout"), [(1, 0.5), (20, 5.0), (200, 30.0)])
def test_default_lease_outlasts_a_batch_that_times_out_entirely(
    batch_size: int, timeout: float
) -> None:
    lease = DeliveryPolicy(batch_size=batch_size, timeout=timeout).lease_time
    assert lease >= timedelta(seconds=batch_size * timeout)


def test_a_configured_lease_is_used_as_is() -> None:
    assert DeliveryPolicy(lease=7.5).lease_time == timedelta(seconds=7.5)


def test_the_claim_renewed_for_one_send_outlasts_the_attempt_but_not_the_lease() -> None:
    # Shorter than the attempt, another worker would send the message in flight again;
    # far longer than the lease, a killed worker's message would wait long after the rest.
    assert DeliveryPolicy(timeout=5).attempt_lease == timedelta(seconds=35)
    assert DeliveryPolicy(timeout=1, lease=3).attempt_lease == timedelta(seconds=4)


def test_runtime_builds_its_delivery_policy_from_the_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_INSTANCE_PATH": str(tmp_path),
            "REFERRALS_WEBHOOK_TIMEOUT": "2",
            "REFERRALS_WEBHOOK_MAX_ATTEMPTS": "3",
            "REFERRALS_WEBHOOK_BACKOFF_BASE": "4",
            "REFERRALS_WEBHOOK_BACKOFF_CAP": "64",
            "REFERRALS_WORKER_BATCH_SIZE": "7",
            "REFERRALS_WORKER_LEASE": "33",
        }
    )
    runtime: Runtime = create_app(settings).extensions["referrals"]
    try:
        made = runtime.delivery_policy()
        assert (made.timeout, made.max_attempts, made.batch_size) == (2.0, 3, 7)
        assert (made.backoff_base, made.backoff_cap) == (4.0, 64.0)
        assert made.lease_time == timedelta(seconds=33)
        assert runtime.deadlines.urgent == timedelta(days=3)
    finally:
        runtime.database.dispose()


# --- referrals worker --once -------------------------------------------------------------------


@pytest.fixture
def seeded(env: dict[str, str], instance: Path) -> Iterator[Flask]:
    """A migrated instance with the Stockholm seed, and an app on it for setting up."""
    run(env, "db", "upgrade")
    run(env, "seed", "stockholm")
    app = create_app(Settings(instance_path=instance))
    yield app
    app.extensions["referrals"].database.dispose()


def token(instance: Path, role: Role, unit: str | None = None) -> dict[str, str]:
    key = devissuer.load_or_create_key(instance)
    return bearer(devissuer.mint(key, role=role, unit=unit, audience="referrals-api"))


def submit_to_norrmalm(app: Flask, instance: Path) -> str:
    response = app.test_client().post(
        "/api/v1/referrals",
        json=referral_body(submit=True),
        headers=token(instance, Role.YOUTH_WORKER, "ungdomsjouren"),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["receiving_unit"] == "norrmalm"
    return str(response.get_json()["id"])


def test_worker_once_on_an_empty_outbox(seeded: Flask, env: dict[str, str]) -> None:
    output = run(env, "worker", "--once")

    assert output == "escalated 0, delivered 0, failed 0, dead 0, skipped 0\n"


def test_worker_once_skips_a_unit_whose_seeded_endpoint_is_disabled(
    seeded: Flask, env: dict[str, str], instance: Path
) -> None:
    submit_to_norrmalm(seeded, instance)

    assert run(env, "worker", "--once") == "escalated 0, delivered 0, failed 0, dead 0, skipped 1\n"
    # Settled: the next round has nothing to do.
    assert run(env, "worker", "--once") == "escalated 0, delivered 0, failed 0, dead 0, skipped 0\n"


def test_worker_once_delivers_a_signed_webhook(
    seeded: Flask, env: dict[str, str], instance: Path
) -> None:
    admin = token(instance, Role.ADMIN)
    with WebhookReceiver() as receiver:
        secret = put_webhook(seeded.test_client(), admin, "norrmalm", receiver.url())[
            "webhook_secret"
        ]
        rid = submit_to_norrmalm(seeded, instance)

        output = run(env | {"REFERRALS_WEBHOOK_TIMEOUT": "3"}, "worker", "--once")

        assert output == "escalated 0, delivered 1, failed 0, dead 0, skipped 0\n"
        (delivery,) = receiver.wait_for(1)
    event = standard_webhooks.verify(secret, delivery.headers, delivery.body)
    assert event["type"] == "referral.submitted"
    assert event["data"] == {"referral_id": rid, "status": "requested"}
    assert json.loads(delivery.body) == event
