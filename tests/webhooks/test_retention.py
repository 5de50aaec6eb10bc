"""Delivered and skipped webhooks are forgotten after the retention period; what still
needs someone (pending, dead) is never pruned, however old."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.db.models import OutboxMessage
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import Actors, create
from tests.support.clock import FakeClock


def states(runtime: Runtime) -> dict[str, str]:
    with runtime.unit_of_work() as uow:
        rows = uow.session.scalars(select(OutboxMessage)).all()
        return {str(m.id): m.state for m in rows}


def test_old_delivered_and_skipped_messages_are_pruned_and_nothing_else(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
) -> None:
    runtime: Runtime = app.extensions["referrals"]
    for _ in range(5):
        create(client, actors.worker, submit=True)  # one message to norrmalm each
    with runtime.unit_of_work() as uow:
        messages = uow.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.created_at, OutboxMessage.id)
        ).all()
        assert len(messages) == 5
        # Give them every state; all but the last were created long ago.
        for message, state in zip(
            messages, ["delivered", "skipped", "dead", "pending", "delivered"], strict=True
        ):
            message.state = state
            # Pending, but not due before the test is over: the round must not send it.
            message.next_attempt_at = clock.now + timedelta(days=365)
        for message in messages[:4]:
            message.created_at = clock.now - timedelta(days=31)
        messages[4].created_at = clock.now - timedelta(days=29)
        ids = [str(m.id) for m in messages]
        uow.commit()

    result = worker.run_round()

    assert result.pruned == 2
    assert states(runtime) == {
        ids[2]: "dead",  # waits for an admin, however old
        ids[3]: "pending",  # not yet delivered
        ids[4]: "delivered",  # inside the retention period
    }
    assert worker.run_round().pruned == 0
    clock.advance(days=2)
    assert worker.run_round().pruned == 1
    assert set(states(runtime)) == {ids[2], ids[3]}
