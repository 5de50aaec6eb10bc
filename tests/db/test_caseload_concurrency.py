"""A reassignment racing transitions and another reassignment, on PostgreSQL for real.

Commits for real (``committed_database``), threads released together by a barrier, as in
tests/db/test_concurrency.py.  The bulk UPDATE takes the rows' locks and raises their
versions, so a transition that read a referral before the move loses (409) rather than
writing over it, and two leads moving the same caseload at once move it once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from referrals.db.engine import Database
from referrals.db.models import Referral, TimelineEvent
from tests.api.helpers import REFERRALS, bearer, referral_body
from tests.db.test_concurrency import BARRIER_TIMEOUT

pytestmark = pytest.mark.postgres_only

ANNA, BO = "anna@norrmalm", "bo@norrmalm"
REASSIGN = "/api/v1/units/norrmalm/reassign"
CASELOAD = 6


@pytest.fixture
def team(live_app: Flask, dev_token: Callable[..., str]) -> dict[str, dict[str, str]]:
    people = {
        "yw": bearer(dev_token("youth_worker", "ungdomsjouren")),
        "anna": bearer(dev_token("caseworker", "norrmalm", ANNA)),
        "bo": bearer(dev_token("caseworker", "norrmalm", BO)),
        "lina": bearer(dev_token("unit_lead", "norrmalm", "lina@norrmalm")),
        "lars": bearer(dev_token("unit_lead", "norrmalm", "lars@norrmalm")),
    }
    client = live_app.test_client()
    for name in ("anna", "bo"):
        assert client.get(REFERRALS, headers=people[name]).status_code == 200
    return people


def annas_caseload(app: Flask, team: dict[str, dict[str, str]]) -> list[str]:
    client = app.test_client()
    ids = []
    for _ in range(CASELOAD):
        created = client.post(REFERRALS, json=referral_body(submit=True), headers=team["yw"])
        assert created.status_code == 201, created.get_json()
        rid = created.get_json()["id"]
        accepted = client.post(
            f"{REFERRALS}/{rid}/accept", json={"assignee": ANNA}, headers=team["anna"]
        )
        assert accepted.status_code == 200, accepted.get_json()
        ids.append(rid)
    return ids


def timeline(database: Database, rid: str) -> list[tuple[int, str]]:
    with database.sessions() as session:
        return [
            (e.position, e.action)
            for e in session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.referral_id == uuid.UUID(rid))
                .order_by(TimelineEvent.position)
            )
        ]


def start(client: Any, *, rid: str, headers: dict[str, str]) -> Any:
    return client.post(f"{REFERRALS}/{rid}/start", json={}, headers=headers)


def test_a_reassignment_racing_transitions_loses_nothing(
    live_app: Flask, committed_database: Database, team: dict[str, dict[str, str]]
) -> None:
    ids = annas_caseload(live_app, team)
    requests: list[Callable[[Any], Any]] = [
        lambda c: c.post(REASSIGN, json={"from": ANNA, "to": BO}, headers=team["lina"])
    ]
    requests += [partial(start, rid=rid, headers=team["anna"]) for rid in ids]
    results = run_each(live_app, requests)
    assert results[0].status_code == 200, results[0].get_json()
    assert results[0].get_json()["count"] == CASELOAD
    for rid, response in zip(ids, results[1:], strict=True):
        assert response.status_code in (200, 409), response.get_json()
        with committed_database.sessions() as session:
            row = session.get(Referral, uuid.UUID(rid))
            assert row is not None
            assert (row.assignee, row.version) == (BO, 4 + (response.status_code == 200))
            status = row.status
        actions = timeline(committed_database, rid)
        assert [p for p, _ in actions] == list(range(1, len(actions) + 1))
        assert [a for _, a in actions].count("reassign") == 1
        started = response.status_code == 200
        assert ("start" in [a for _, a in actions]) is started
        assert status == ("in_progress" if started else "accepted")


def test_two_leads_moving_one_caseload_at_once_move_it_once(
    live_app: Flask, committed_database: Database, team: dict[str, dict[str, str]]
) -> None:
    ids = annas_caseload(live_app, team)
    body = {"from": ANNA, "to": BO}
    results = run_each(
        live_app,
        [
            lambda c: c.post(REASSIGN, json=body, headers=team["lina"]),
            lambda c: c.post(REASSIGN, json=body, headers=team["lars"]),
        ],
    )
    assert [r.status_code for r in results] == [200, 200]
    assert sorted(r.get_json()["count"] for r in results) == [0, CASELOAD]
    for rid in ids:
        assert [a for _, a in timeline(committed_database, rid)].count("reassign") == 1


def run_each(app: Flask, requests: list[Callable[[Any], Any]]) -> list[Any]:
    """Each request from its own thread and test client, released together by a barrier."""
    barrier = threading.Barrier(len(requests), timeout=BARRIER_TIMEOUT)

    def one(request: Callable[[Any], Any]) -> Any:
        client = app.test_client()
        barrier.wait()
        return request(client)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))
