"""Truly concurrent requests against PostgreSQL: transitions and edits are atomic.

These tests commit for real (``committed_database``) and run many test clients at once from
threads released together by a barrier.  SQLite serialises writers on a file lock and is
not what production runs on, so they are PostgreSQL only.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import Referral, TimelineEvent
from tests.api.helpers import REFERRALS, Actors, referral_body

pytestmark = pytest.mark.postgres_only

# Far below any lock or pool timeout: a hang fails the test instead of the suite.
BARRIER_TIMEOUT = 30.0


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def all_at_once(
    count: int, request: Callable[[Any], TestResponse], app: Flask
) -> list[TestResponse]:
    """Run ``request(client)`` from ``count`` threads, each with its own test client,
    released together; returns the responses in thread order."""
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)

    def one(_: int) -> TestResponse:
        client = app.test_client()
        barrier.wait()
        return request(client)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def statuses_of(responses: list[TestResponse]) -> list[int]:
    return [r.status_code for r in responses]


def stored(database: Database, referral_id: str) -> tuple[Referral, list[TimelineEvent]]:
    with database.sessions() as session:
        row = session.get(Referral, uuid.UUID(referral_id))
        assert row is not None
        events = list(
            session.scalars(select(TimelineEvent).where(TimelineEvent.referral_id == row.id))
        )
        session.expunge_all()
    return row, events


@pytest.mark.parametrize("with_if_match", [False, True], ids=["no-if-match", "if-match"])
def test_fifty_simultaneous_accepts_one_wins(live_app, committed_database, actors, with_if_match):
    client = live_app.test_client()
    created = client.post(REFERRALS, json=referral_body(submit=True), headers=actors.worker)
    assert created.status_code == 201, created.get_json()
    rid, version = created.get_json()["id"], created.get_json()["version"]
    headers = dict(actors.norrmalm)
    if with_if_match:
        headers["If-Match"] = f'"v{version}"'

    statuses = statuses_of(
        all_at_once(
            50,
            lambda c: c.post(f"{REFERRALS}/{rid}/accept", json={}, headers=headers),
            live_app,
        )
    )

    assert statuses.count(200) == 1, statuses
    # Without If-Match every loser is a conflict (README: Referral states); with it, a loser
    # that read the new version may instead be told its precondition failed.
    losers = {409, 412} if with_if_match else {409}
    assert set(statuses) - {200} <= losers, statuses
    row, events = stored(committed_database, rid)
    assert row.status == "accepted"
    assert row.version == version + 1
    assert [e.action for e in events].count("accept") == 1
    assert len(events) == 3  # create, submit, accept


@pytest.mark.parametrize("writers", [2, 10])
def test_simultaneous_patches_with_the_same_if_match_one_wins(
    live_app, committed_database, actors, writers
):
    client = live_app.test_client()
    created = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
    assert created.status_code == 201, created.get_json()
    rid = created.get_json()["id"]
    headers = {**actors.worker, "If-Match": created.headers["ETag"]}
    narratives = iter(f"Version from writer {n}." for n in range(writers))
    lock = threading.Lock()

    def patch(c: Any) -> TestResponse:
        with lock:
            narrative = next(narratives)
        response = c.patch(f"{REFERRALS}/{rid}", json={"narrative": narrative}, headers=headers)
        if response.status_code == 200:
            winners.append(narrative)
        return response

    winners: list[str] = []
    statuses = statuses_of(all_at_once(writers, patch, live_app))

    assert statuses.count(200) == 1, statuses
    assert set(statuses) - {200} <= {409, 412}, statuses
    row, _events = stored(committed_database, rid)
    assert row.version == 2
    # The stored narrative is ciphertext now; read it back the way a client does.
    read = live_app.test_client().get(f"{REFERRALS}/{rid}", headers=actors.worker)
    assert read.get_json()["narrative"] == winners[0]
    with committed_database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


def test_simultaneous_submits_of_one_draft_one_wins(live_app, committed_database, actors):
    """A double tap on "send" from a phone on a bad connection."""
    client = live_app.test_client()
    created = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
    assert created.status_code == 201, created.get_json()
    rid = created.get_json()["id"]

    statuses = statuses_of(
        all_at_once(
            10,
            lambda c: c.post(f"{REFERRALS}/{rid}/submit", json={}, headers=actors.worker),
            live_app,
        )
    )

    assert statuses.count(200) == 1, statuses
    assert set(statuses) - {200} <= {409}, statuses
    row, events = stored(committed_database, rid)
    assert row.status == "requested"
    assert [e.action for e in events].count("submit") == 1


def test_delete_racing_patch_never_fails_the_server(live_app, committed_database, actors):
    """Ten drafts, each deleted and edited at the same instant by two requests."""
    client = live_app.test_client()
    drafts = []
    for _ in range(10):
        created = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
        assert created.status_code == 201, created.get_json()
        drafts.append(created.get_json()["id"])
    jobs = iter([(rid, kind) for rid in drafts for kind in ("delete", "patch")])
    lock = threading.Lock()
    outcomes: dict[tuple[str, str], int] = {}

    def race(c: Any) -> TestResponse:
        with lock:
            rid, kind = next(jobs)
        if kind == "delete":
            response = c.delete(f"{REFERRALS}/{rid}", headers=actors.worker)
        else:
            response = c.patch(
                f"{REFERRALS}/{rid}",
                json={"narrative": "Edited."},
                headers={**actors.worker, "If-Match": '"v1"'},
            )
        with lock:
            outcomes[rid, kind] = response.status_code
        return response

    all_at_once(len(drafts) * 2, race, live_app)

    for rid in drafts:
        deleted, patched = outcomes[rid, "delete"], outcomes[rid, "patch"]
        assert deleted in {204, 409}, (deleted, patched)
        assert patched in {200, 404, 409}, (deleted, patched)
        with committed_database.sessions() as session:
            row = session.get(Referral, uuid.UUID(rid))
            assert (row is None) is (deleted == 204), (deleted, patched)
            if row is not None:
                read = client.get(f"{REFERRALS}/{rid}", headers=actors.worker).get_json()
                assert (read["narrative"] == "Edited.") is (patched == 200)


def test_simultaneous_creates_with_one_idempotency_key_make_one_referral(
    live_app, committed_database, actors
):
    headers = {**actors.worker, "Idempotency-Key": "retry-storm"}
    body = referral_body(submit=True)

    responses = all_at_once(10, lambda c: c.post(REFERRALS, json=body, headers=headers), live_app)

    assert statuses_of(responses) == [201] * 10
    assert len({r.get_json()["id"] for r in responses}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count("true") == 9, replayed
    with committed_database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
        assert session.scalar(select(func.count()).select_from(TimelineEvent)) == 2
