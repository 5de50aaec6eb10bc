"""Item 10 of "Trust under attack": refused tokens name whoever they like.

The review's attack: a token with a broken signature that claims a real caseworker's
subject is refused (401) and recorded under that name, unverified; an auditor's search
by actor then showed the attacker's requests as the caseworker's.  And every refused
request wrote a permanent row under an attacker-chosen name, as fast as it could send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select

from referrals.db.models import AuditEvent
from tests.support.audit_forgery import tampered
from tests.support.clock import FakeClock

API = "/api/v1"
CASEWORKER = "dev-caseworker@norrmalm"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def search(client: FlaskClient, auditor: str, **query: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/audit/events", query_string=query, headers=bearer(auditor))
    assert response.status_code == 200, response.get_data(as_text=True)
    items: list[dict[str, Any]] = response.json["items"]
    return items


def test_a_search_by_actor_matches_verified_actors_unless_asked_otherwise(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    caseworker = dev_token("caseworker", "norrmalm")
    assert client.get(f"{API}/units", headers=bearer(caseworker)).status_code == 200
    forged = tampered(caseworker, unit="sodermalm")  # claims the caseworker's subject
    assert client.get(f"{API}/units", headers=bearer(forged)).status_code == 401
    auditor = dev_token("auditor")

    found = search(client, auditor, actor=CASEWORKER)
    assert [(e["actor"]["verified"], e["http_status"]) for e in found] == [(True, 200)]
    both = search(client, auditor, actor=CASEWORKER, unverified="true")
    assert sorted((e["actor"]["verified"], e["http_status"]) for e in both) == [
        (False, 401),
        (True, 200),
    ]


def test_repeated_refusals_of_one_claimed_actor_are_one_row_per_minute_with_the_count(
    client: FlaskClient,
    dev_token: Callable[..., str],
    db_connection: Connection,
    clock: FakeClock,
) -> None:
    forged = tampered(dev_token("caseworker", "norrmalm"), unit="sodermalm")

    def refused(count: int) -> None:
        for _ in range(count):
            response = client.get(f"{API}/units", headers=bearer(forged))
            assert response.status_code == 401  # each one answered, none failed

    def rows() -> int:
        return db_connection.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.actor_subject == CASEWORKER, AuditEvent.actor_verified.is_(False))
        ).scalar_one()

    refused(40)
    assert rows() == 1
    clock.advance(minutes=1)
    refused(2)
    assert rows() == 2

    events = search(client, dev_token("auditor"), actor=CASEWORKER, unverified="true")
    assert [e["repeated"] for e in events] == [2, 40]  # newest first; every request counted
