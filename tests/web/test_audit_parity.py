"""A page that shows case data is audited exactly as the matching API calls are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from referrals.db.engine import Database
from referrals.db.models import AuditEvent
from tests.api.helpers import REFERRALS, bearer
from tests.support.clock import FakeClock
from tests.web.helpers import (
    APP,
    NEW,
    PNR,
    SODERMALM,
    created_id,
    post,
    referral_form,
    sign_in,
    text,
)

Row = tuple[Any, ...]


def _events(database: Database) -> list[Row]:
    with database.sessions() as session:
        rows = session.scalars(select(AuditEvent)).all()
    return [
        (
            e.action,
            e.target_type,
            e.target_id,
            e.outcome,
            e.http_status,
            e.actor_subject,
            tuple(e.roles),
            e.unit,
        )
        for e in rows
    ]


def _new_events(database: Database, action: Callable[[], object]) -> list[Row]:
    before = _events(database)
    action()
    after = _events(database)
    for row in before:
        after.remove(row)
    return sorted(after, key=str)


def test_a_referral_page_writes_the_events_of_the_three_api_reads(
    client: FlaskClient, database: Database, dev_token: Callable[..., str]
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    worker = bearer(dev_token("youth_worker", "ungdomsjouren"))

    page = _new_events(database, lambda: client.get(f"{APP}/referrals/{referral}"))

    def api() -> None:
        for path in ("", "/events", "/notes"):
            assert client.get(f"{REFERRALS}/{referral}{path}", headers=worker).status_code == 200

    assert page == _new_events(database, api)
    assert {row[0] for row in page} == {"referral:read", "referral:events", "note:list"}


def test_creating_through_the_page_is_audited_like_the_api(
    client: FlaskClient, database: Database
) -> None:
    sign_in(client)
    events = _new_events(database, lambda: post(client, NEW, referral_form()))
    assert [(e[0], e[3], e[4]) for e in events] == [("referral:create", "allowed", 201)]


def test_a_refused_page_is_audited_like_the_refused_api_call(
    client: FlaskClient, database: Database, dev_token: Callable[..., str]
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    other = client.application.test_client()
    sign_in(other, SODERMALM)
    sodermalm = bearer(dev_token("caseworker", "sodermalm"))

    page = _new_events(database, lambda: other.get(f"{APP}/referrals/{referral}"))
    api = _new_events(database, lambda: other.get(f"{REFERRALS}/{referral}", headers=sodermalm))
    assert page == api
    assert [(e[0], e[3], e[4]) for e in page] == [("referral:read", "denied", 404)]


def test_an_anonymous_visit_to_a_case_page_is_audited_like_a_call_without_a_token(
    client: FlaskClient, database: Database, clock: FakeClock
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    stranger = client.application.test_client()
    page = _new_events(database, lambda: stranger.get(f"{APP}/referrals/{referral}"))
    # A minute later: within one minute the second anonymous refusal would only be
    # counted on the first one's event (SECURITY.md, refused tokens).
    clock.advance(minutes=1)
    api = _new_events(database, lambda: stranger.get(f"{REFERRALS}/{referral}"))
    assert page == api
    assert [(e[0], e[3], e[4]) for e in page] == [("referral:read", "denied", 401)]


def test_a_form_refused_by_the_rules_is_audited_like_the_api_422(
    client: FlaskClient, database: Database
) -> None:
    sign_in(client)
    form = referral_form(**{"subject-birth_date": "31 mars"})
    events = _new_events(database, lambda: post(client, NEW, form))
    assert [(e[0], e[3], e[4]) for e in events] == [("referral:create", "error", 422)]


def _failing_record(*_args: object, **_kwargs: object) -> None:
    raise OperationalError("INSERT INTO audit_events", {}, Exception("audit store down"))


def test_a_page_whose_audit_event_cannot_be_written_shows_nothing(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    monkeypatch.setattr("referrals.services.uow.record", _failing_record)
    monkeypatch.setattr("referrals.runtime.record", _failing_record)
    for path in (f"{APP}/referrals/{referral}", f"{APP}/referrals"):
        response = client.get(path)
        assert response.status_code == 503
        assert "Testa" not in text(response)


def test_a_search_is_audited_like_the_api_search_and_records_no_number(
    client: FlaskClient, database: Database
) -> None:
    sign_in(client)
    events = _new_events(
        database, lambda: post(client, f"{APP}/referrals/search", {"personal_number": PNR})
    )
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        ("referral:search", None, None, "allowed")
    ]


def test_my_referrals_is_audited_like_the_api_listing(
    client: FlaskClient, database: Database, dev_token: Callable[..., str]
) -> None:
    sign_in(client)
    worker = bearer(dev_token("youth_worker", "ungdomsjouren"))
    page = _new_events(database, lambda: client.get(f"{APP}/referrals"))
    api = _new_events(database, lambda: client.get(REFERRALS, headers=worker))
    assert page == api
    assert [(e[0], e[3]) for e in page] == [("referral:list", "allowed")]


def _actors(database: Database, action: Callable[[], object]) -> list[Row]:
    """Who the events an action writes name, and what each says happened."""
    before = _all_ids(database)
    action()
    with database.sessions() as session:
        rows = session.scalars(select(AuditEvent)).all()
    return [
        (
            e.action,
            e.outcome,
            e.http_status,
            e.actor_verified,
            e.actor_issuer,
            e.actor_subject,
            tuple(e.roles),
            e.unit,
        )
        for e in rows
        if e.id not in before
    ]


def _all_ids(database: Database) -> set[Any]:
    with database.sessions() as session:
        return set(session.scalars(select(AuditEvent.id)).all())


def test_a_page_refused_for_scope_is_audited_under_the_signed_in_actor(
    client: FlaskClient, database: Database
) -> None:
    """A youth worker's session has no audit scope: the auditor's search page answers
    403 and the trail names the verified youth worker, as the API does for a 403."""
    sign_in(client)
    listed = _actors(database, lambda: client.get(f"{APP}/referrals"))
    assert [row[:3] for row in listed] == [("referral:list", "allowed", 200)]
    actor = listed[0][3:]
    assert actor[0] is True
    assert actor[2]  # a subject

    refused: list[Any] = []
    events = _actors(database, lambda: refused.append(client.get(f"{APP}/audit/events")))
    assert refused[0].status_code == 403
    assert events == [("audit:search", "denied", 403, *actor)]
