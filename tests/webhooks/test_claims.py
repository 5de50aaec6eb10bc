"""Claiming works the same without RETURNING (SQLite before 3.35, e.g. Debian 11)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.db.models import OutboxMessage
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import Actors, create
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import WebhookReceiver


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "no-returning"])
def test_a_round_claims_one_batch_and_settles_it(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    returning: bool,
) -> None:
    runtime: Runtime = app.extensions["referrals"]
    monkeypatch.setattr(runtime.database.engine.dialect, "update_returning", returning)
    worker.policy = dataclasses.replace(worker.policy, batch_size=3)
    for _ in range(5):
        create(client, actors.worker, submit=True)  # norrmalm has no endpoint: skipped

    rounds = [worker.run_round() for _ in range(3)]

    assert [(r.claimed, r.skipped) for r in rounds] == [(3, 3), (2, 2), (0, 0)]
    with runtime.unit_of_work() as uow:
        rows = uow.session.scalars(select(OutboxMessage)).all()
        assert {(m.state, m.attempts, m.claim_token) for m in rows} == {("skipped", 1, None)}


def test_a_stopping_worker_sends_no_more_of_its_batch(
    app: Flask, client: FlaskClient, actors: Actors, worker: Worker, receiver: WebhookReceiver,
    set_webhook: Callable[..., str], clock: FakeClock,
) -> None:  # fmt: skip
    """SIGTERM mid-batch: the message in hand is finished, the rest come back later."""
    runtime: Runtime = app.extensions["referrals"]
    set_webhook("norrmalm", receiver.url())
    for _ in range(3):
        create(client, actors.worker, submit=True)
    receiver.on_request = worker.stop  # the signal arrives while the first is being sent

    first = worker.run_round()

    assert (first.claimed, first.delivered) == (3, 1)
    assert len(receiver.received) == 1
    with runtime.unit_of_work() as uow:
        states = sorted(m.state for m in uow.session.scalars(select(OutboxMessage)))
    assert states == ["delivered", "pending", "pending"]
    # The two left over come back once the lease is over, to a worker still running.
    clock.advance(seconds=worker.policy.lease_time.total_seconds() + 1)
    assert Worker(runtime).run_round().delivered == 2
