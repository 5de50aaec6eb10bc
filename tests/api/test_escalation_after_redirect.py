"""An overdue referral redirected after its escalation is escalated again, to its new unit.

Redirect keeps the deadline.  Before the fix the escalation was recorded once per
(referral, deadline): a referral that was already overdue when it was redirected was never
announced as overdue to the unit that now has it, which learned of its deadline only from
the redirect itself, and the sending unit never heard it was still unanswered.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.config import Settings
from referrals.db.models import DeadlineNotice
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import (
    NORRMALM,
    REFERRER,
    SODERMALM,
    Actors,
    act,
    bearer,
    create,
    moment,
)
from tests.support.clock import FakeClock
from tests.support.standard_webhooks import verify
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import Received, WebhookReceiver

OVERDUE, UNANSWERED = "referral.overdue", "referral.unanswered"


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path, webhook_timeout=2.0)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture
def worker(app: Flask) -> Iterator[Worker]:
    job = Worker(app.extensions["referrals"])
    yield job
    job.sender.close()


def notices(app: Flask) -> list[tuple[str, str]]:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    with runtime.unit_of_work() as uow:
        rows = uow.session.scalars(select(DeadlineNotice)).all()
        return sorted((str(row.referral_id), row.unit_id) for row in rows)


def arrivals(
    received: list[Received], secrets: dict[str, str], clock: FakeClock
) -> Counter[tuple[str, str, str]]:
    """(unit, event type, referral id) of each delivery, each checked with its unit's
    secret by the independent verifier."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for request in received:
        unit = request.path.removeprefix("/")
        payload: Any = verify(
            secrets[unit], request.headers, request.body, now=clock.now.timestamp()
        )
        seen[(unit, payload["type"], payload["data"]["referral_id"])] += 1
    return seen


def test_an_overdue_referral_redirected_after_its_escalation_is_escalated_to_the_new_unit(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    dev_token: Callable[..., str],
    worker: Worker,
    receiver: WebhookReceiver,
    clock: FakeClock,
) -> None:
    admin = bearer(dev_token("admin"))
    secrets = {
        unit: put_webhook(client, admin, unit, receiver.url(f"/{unit}"))["webhook_secret"]
        for unit in (REFERRER, NORRMALM, SODERMALM)
    }
    created = create(client, actors.worker, submit=True, priority="urgent")
    rid, due = created["id"], moment(created["due_at"])
    assert worker.run_round().delivered == 1  # the submission, to Norrmalm
    receiver.clear()

    # Overdue at Norrmalm: escalated to both ends, once.
    clock.now = due + timedelta(minutes=1)
    first = worker.run_round()
    assert (first.escalated, first.delivered) == (1, 2)
    assert arrivals(receiver.received, secrets, clock) == Counter(
        {(NORRMALM, OVERDUE, rid): 1, (REFERRER, UNANSWERED, rid): 1}
    )
    assert worker.run_round().escalated == 0
    receiver.clear()

    # Norrmalm passes it on, still overdue (the deadline stays what it was).
    clock.advance(minutes=10)
    moved = act(client, rid, "redirect", actors.norrmalm,
                {"unit": SODERMALM, "reason_code": "wrong_district"})  # fmt: skip
    assert moved.status_code == 200, moved.get_json()
    assert moment(moved.get_json()["due_at"]) == due

    second = worker.run_round()
    assert second.escalated == 1
    assert arrivals(receiver.received, secrets, clock) == Counter(
        {
            (SODERMALM, "referral.redirected", rid): 1,
            (REFERRER, "referral.redirected", rid): 1,
            (SODERMALM, OVERDUE, rid): 1,
            (REFERRER, UNANSWERED, rid): 1,
        }
    )
    for request in receiver.received:
        assert json.loads(request.body)["data"] == {"referral_id": rid, "status": "requested"}
    assert notices(app) == sorted([(rid, NORRMALM), (rid, SODERMALM)])

    # Once per deadline and unit: later rounds add nothing, Norrmalm hears nothing more.
    receiver.clear()
    for hours in (0, 1, 24):
        clock.advance(hours=hours)
        result = worker.run_round()
        assert (result.escalated, result.claimed) == (0, 0)
    assert receiver.received == []
    assert len(notices(app)) == 2
