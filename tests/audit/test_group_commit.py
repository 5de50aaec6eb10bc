"""Reads that reach their commit together share one INSERT and one durable commit of
their audit events (referrals/audit/group.py), on PostgreSQL with real threads.

What must hold: every read's own event is committed before it answers (one per request,
none lost, none doubled); a batch whose commit fails fails every reader in it closed
(503, no case data); a request that wrote anything else commits its event with that
change, in its own transaction, never through the group.  The batch is made
deterministic by holding the first leader until the other readers have queued.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from referrals.audit.group import AuditGroup
from referrals.audit.recorder import PendingAudit
from referrals.db.engine import Database
from referrals.db.models import AuditEvent
from referrals.services import uow as uow_module
from tests.api.helpers import REFERRALS, Actors, referral_body

pytestmark = pytest.mark.postgres_only

READERS = 6
WAIT = 20.0  # far above any real wait: a hang fails the test, not the suite

Batch = Sequence[tuple[PendingAudit, int, datetime]]


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def group_of(app: Flask) -> AuditGroup:
    group = app.extensions["referrals"].audit_group
    assert isinstance(group, AuditGroup)
    return group


def hold_first_leader(
    monkeypatch: pytest.MonkeyPatch, group: AuditGroup, *, fail_later: bool = False
) -> list[int]:
    """The first batch waits until every other reader has queued behind it; with
    ``fail_later`` every later batch fails as a full disk would.  Returns the batch sizes."""
    real = uow_module._write
    sizes: list[int] = []

    def write(session: Session, events: Batch) -> None:
        sizes.append(len(events))
        if len(sizes) == 1:
            deadline = time.monotonic() + WAIT
            while len(group._queue) < READERS - 1:
                assert time.monotonic() < deadline, "the other readers never queued"
                time.sleep(0.01)
        elif fail_later:
            raise OperationalError("INSERT", {}, Exception("disk full"))
        real(session, events)

    monkeypatch.setattr(uow_module, "_write", write)
    return sizes


def read_together(app: Flask, path: str, headers: dict[str, str]) -> list[TestResponse]:
    barrier = threading.Barrier(READERS, timeout=WAIT)

    def one(_: int) -> TestResponse:
        client = app.test_client()
        barrier.wait()
        return client.get(path, headers=headers)

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return list(pool.map(one, range(READERS)))


def events_of(database: Database, responses: list[TestResponse]) -> dict[str, list[Any]]:
    ids = [r.headers["X-Request-ID"] for r in responses]
    with database.sessions() as session:
        rows = session.execute(
            select(AuditEvent.request_id, AuditEvent.outcome, AuditEvent.http_status).where(
                AuditEvent.request_id.in_(ids)
            )
        ).all()
    found: dict[str, list[Any]] = {i: [] for i in ids}
    for request_id, outcome, status in rows:
        found[request_id].append((outcome, status))
    return found


def created(app: Flask, actors: Actors) -> str:
    response = app.test_client().post(
        REFERRALS, json=referral_body(submit=True), headers=actors.worker
    )
    assert response.status_code == 201, response.get_json()
    rid = str(response.get_json()["id"])
    # The receiving caseworker's first request of the hour records them as staff of the
    # unit (services/staff.py): a write, so that read commits on its own.  Make it here,
    # so the reads under test are reads only, and count from zero after it.
    seen = app.test_client().get(f"{REFERRALS}/{rid}", headers=actors.norrmalm)
    assert seen.status_code == 200, seen.get_json()
    group = group_of(app)
    group.batches = group.events = 0
    return rid


def test_concurrent_reads_share_one_commit_and_each_is_recorded(
    live_app: Flask,
    committed_database: Database,
    actors: Actors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = created(live_app, actors)
    group = group_of(live_app)
    sizes = hold_first_leader(monkeypatch, group)

    responses = read_together(live_app, f"{REFERRALS}/{rid}", actors.norrmalm)

    assert [r.status_code for r in responses] == [200] * READERS
    # Two commits for six reads: the first leader's, and one for the five queued behind it.
    assert sizes == [1, READERS - 1]
    assert (group.batches, group.events) == (2, READERS)
    # Each read's own event, exactly once, committed before its answer (read afterwards
    # from another connection).
    assert list(events_of(committed_database, responses).values()) == [[("allowed", 200)]] * READERS


def test_a_batch_that_cannot_be_committed_fails_every_reader_in_it(
    live_app: Flask,
    committed_database: Database,
    actors: Actors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = created(live_app, actors)
    group = group_of(live_app)
    sizes = hold_first_leader(monkeypatch, group, fail_later=True)

    responses = read_together(live_app, f"{REFERRALS}/{rid}", actors.norrmalm)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [503] * (READERS - 1)
    assert sizes == [1, READERS - 1]
    subject = referral_body(submit=True)["subject"]["name"]
    for response in responses:
        if response.status_code == 503:
            assert subject not in response.get_data(as_text=True)
    # The failed ones are recorded by the refusal path, as errors; nothing claims they
    # were answered.
    recorded = events_of(committed_database, responses)
    for response in responses:
        expected = [("allowed", 200)] if response.status_code == 200 else [("error", 503)]
        assert recorded[response.headers["X-Request-ID"]] == expected


def test_a_read_that_wrote_commits_its_event_with_its_change(
    live_app: Flask,
    committed_database: Database,
    actors: Actors,
) -> None:
    rid = created(live_app, actors)  # routed to norrmalm
    group = group_of(live_app)
    client = live_app.test_client()

    plain = client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm)
    assert plain.status_code == 200
    assert group.events == 1

    # Breaking the glass writes a grant: that read commits its event in its own
    # transaction, with the grant, not through the group.
    glass = client.get(
        f"{REFERRALS}/{rid}",
        headers={**actors.sodermalm, "X-Break-Glass-Reason": "risk_to_life"},
    )
    assert glass.status_code == 200, glass.get_json()
    assert group.events == 1
    assert events_of(committed_database, [glass]) == {
        glass.headers["X-Request-ID"]: [("allowed", 200)]
    }
    # A write never comes here either.
    accepted = client.post(f"{REFERRALS}/{rid}/accept", json={}, headers=actors.norrmalm)
    assert accepted.status_code == 200
    assert group.events == 1
    assert uuid.UUID(rid)
