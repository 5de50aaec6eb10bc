"""Claiming works the same without RETURNING (SQLite before 3.35, e.g. Debian 11)."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.db.models import OutboxMessage
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import Actors, create


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
