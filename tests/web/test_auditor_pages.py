"""The auditor's pages, and who may not open them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, select

from referrals.audit import sealing
from referrals.db.engine import Database
from referrals.db.models import AuditSeal
from tests.support.audit_forgery import forge_back_dated_event, tampered
from tests.support.clock import FakeClock
from tests.web.helpers import (
    APP,
    AUDITOR,
    NEW,
    NORRMALM,
    WORKER,
    created_id,
    post,
    referral_form,
    sign_in,
    text,
)

AUDIT_PAGES = ("/audit/", "/audit/events", "/audit/break-glass")


@pytest.mark.parametrize("identity", [WORKER, NORRMALM])
def test_case_workers_cannot_open_auditor_pages(client: FlaskClient, identity: str) -> None:
    sign_in(client, identity)
    for path in (*AUDIT_PAGES, "/audit/referrals/00000000-0000-4000-8000-000000000000"):
        assert client.get(f"{APP}{path}").status_code == 403, path


def test_an_auditor_sees_no_case_pages(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    auditor = client.application.test_client()
    sign_in(auditor, AUDITOR)
    response = auditor.get(f"{APP}/referrals/{referral}")
    assert response.status_code == 403
    assert "Testa" not in text(response)


def test_the_access_log_shows_who_read_the_referral(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    client.get(f"{APP}/referrals/{referral}")
    auditor = client.application.test_client()
    sign_in(auditor, AUDITOR)
    assert auditor.get(f"{APP}/").headers["Location"] == f"{APP}/audit/"
    page = text(auditor.get(f"{APP}/audit/referrals/{referral}"))
    assert "dev-youth_worker@ungdomsjouren" in page
    assert "<code>referral:read</code>" in page
    assert "Testa" not in page


def test_the_chain_search_and_review_pages_answer(client: FlaskClient) -> None:
    sign_in(client, AUDITOR)
    assert "Loggkedjan" in text(client.get(f"{APP}/audit/"))
    found = client.get(f"{APP}/audit/events", query_string={"action": "audit:verify"})
    assert found.status_code == 200
    assert "<code>audit:verify</code>" in text(found)
    assert client.get(f"{APP}/audit/break-glass").status_code == 200
    wrong = client.get(f"{APP}/audit/events", query_string={"since": "igår"})
    assert wrong.status_code == 422
    assert '<a href="#since">' in text(wrong)


def test_the_chain_page_says_when_sealing_is_behind(client: FlaskClient, clock: FakeClock) -> None:
    sign_in(client, AUDITOR)
    assert "Kedjan är obruten." in text(client.get(f"{APP}/audit/"))
    clock.advance(seconds=31)  # unsealed events older than REFERRALS_AUDIT_SEAL_LAG (30 s)
    page = text(client.get(f"{APP}/audit/"))
    assert "förseglingen ligger efter" in page
    assert "Kedjan har ändrats" not in page


def test_the_chain_page_lists_events_the_sealer_flagged(
    client: FlaskClient, database: Database, db_connection: Connection, clock: FakeClock
) -> None:
    sign_in(client, AUDITOR)
    client.get(f"{APP}/audit/")
    runtime = client.application.extensions["referrals"]
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    forged = forge_back_dated_event(db_connection, clock)
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    seq = db_connection.execute(
        select(AuditSeal.seq).where(AuditSeal.event_id == forged)
    ).scalar_one()
    page = text(client.get(f"{APP}/audit/"))
    assert "händelser behöver granskas" in page
    assert f"händelse {seq}: bakåtdaterad" in page


def test_the_search_page_finds_claimed_names_only_when_asked(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    caseworker = dev_token("caseworker", "norrmalm")
    forged = tampered(caseworker, unit="sodermalm")  # the claims survive, the signature not
    for _ in range(3):
        response = client.get("/api/v1/units", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
    sign_in(client, AUDITOR)
    who = {"actor": "dev-caseworker@norrmalm"}
    assert "inte verifierad" not in text(client.get(f"{APP}/audit/events", query_string=who))
    page = text(client.get(f"{APP}/audit/events", query_string={**who, "unverified": "true"}))
    assert "inte verifierad" in page
    assert "3 gånger den minuten" in page
