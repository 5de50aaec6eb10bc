"""Attacks on the pages: forged posts, framing, other origins, stolen or old sessions."""

from __future__ import annotations

import dataclasses
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals.config import Environment
from referrals.db.engine import Database
from referrals.db.models import Referral, WebSession
from referrals.runtime import Runtime
from referrals.web.security import CONTENT_SECURITY_POLICY
from referrals.web.sessions import PLAIN_COOKIE, SECURE_COOKIE, ServerSideSessions
from tests.support.clock import FakeClock
from tests.web.helpers import (
    APP,
    AUDITOR,
    MINE,
    NEW,
    PNR,
    WORKER,
    created_id,
    csrf,
    post,
    referral_form,
    sign_in,
    text,
)


def _referrals(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(Referral)) or 0


def test_a_post_without_the_csrf_token_is_refused(client: FlaskClient, database: Database) -> None:
    sign_in(client)
    response = client.post(NEW, data=referral_form())
    assert response.status_code == 400
    assert _referrals(database) == 0


def test_a_token_from_another_session_is_refused(client: FlaskClient, database: Database) -> None:
    sign_in(client)
    attacker = client.application.test_client()
    sign_in(attacker)
    stolen = csrf(attacker.get(NEW))
    response = client.post(NEW, data={**referral_form(), "csrf_token": stolen})
    assert response.status_code == 400
    assert _referrals(database) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_a_cross_site_post_is_refused_even_with_a_token(
    client: FlaskClient, database: Database, headers: dict[str, str]
) -> None:
    sign_in(client)
    token = csrf(client.get(NEW))
    response = client.post(NEW, data={**referral_form(), "csrf_token": token}, headers=headers)
    assert response.status_code == 403
    assert _referrals(database) == 0


def test_a_same_origin_post_from_a_browser_is_accepted(client: FlaskClient) -> None:
    sign_in(client)
    token = csrf(client.get(NEW))
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost", "Host": "localhost"}
    response = client.post(NEW, data={**referral_form(), "csrf_token": token}, headers=headers)
    created_id(response)


def _pages(client: FlaskClient) -> list[str]:
    referral = created_id(post(client, NEW, referral_form()))
    return [
        f"{APP}/",
        NEW,
        MINE,
        f"{APP}/referrals/{referral}",
        f"{APP}/referrals/{referral}/edit",
        f"{APP}/sign-in",
        f"{APP}/dev/sign-in",
        f"{APP}/signed-out",
        f"{APP}/referrals/00000000-0000-4000-8000-000000000000",
    ]


def _audit_pages(client: FlaskClient, referral: str) -> list[tuple[FlaskClient, str]]:
    auditor = client.application.test_client()
    sign_in(auditor, AUDITOR)
    return [
        (auditor, f"{APP}/audit/"),
        (auditor, f"{APP}/audit/events?action=referral:read"),
        (auditor, f"{APP}/audit/break-glass"),
        (auditor, f"{APP}/audit/referrals/{referral}"),
    ]


def _every_page(client: FlaskClient) -> list[tuple[FlaskClient, str]]:
    pages = _pages(client)
    referral = pages[3].rsplit("/", 1)[1]
    return [(client, path) for path in pages] + _audit_pages(client, referral)


def test_every_page_sends_the_protective_headers(client: FlaskClient) -> None:
    sign_in(client)
    for browser, path in _every_page(client):
        response = browser.get(path)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_no_page_refers_to_another_origin_or_carries_inline_script(client: FlaskClient) -> None:
    sign_in(client)
    for browser, path in _every_page(client):
        page = text(browser.get(path, follow_redirects=True))
        addresses = re.findall(r'(?:href|src|action)="([^"]*)"', page)
        assert addresses, path
        for address in addresses:
            assert address.startswith(("/app/", "#")), (path, address)
        assert "<script>" not in page
        assert " style=" not in page
        assert "<style" not in page
        assert re.findall(r"<script[^>]*>", page) == ['<script src="/app/static/app.js" defer>']
    for asset in ("app.css", "app.js"):
        with client.get(f"{APP}/static/{asset}") as response:
            body = text(response)
        assert "http:" not in body
        assert "https:" not in body
        assert "@import" not in body


def test_the_session_cookie_is_http_only_same_site_and_opaque(
    client: FlaskClient, database: Database
) -> None:
    response = sign_in(client)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{PLAIN_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits
    with database.sessions() as session:
        rows = session.scalars(select(WebSession)).all()
    # The database holds a hash of the cookie, never the cookie, and no readable token.
    assert all(row.id != value for row in rows)
    assert all(b"eyJ" not in row.data for row in rows)


def test_in_production_the_cookie_is_secure_and_host_only(app: Flask) -> None:
    runtime: Runtime = app.extensions["referrals"]
    production = dataclasses.replace(
        runtime, settings=runtime.settings.with_overrides(env=Environment.PRODUCTION)
    )
    app.session_interface = ServerSideSessions(production)
    client = app.test_client()
    page = client.get(f"{APP}/dev/sign-in")  # still a development app otherwise
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{SECURE_COOKIE}=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_signing_in_issues_a_new_session_id(client: FlaskClient) -> None:
    before = client.get(f"{APP}/dev/sign-in").headers["Set-Cookie"].split(";")[0]
    after = sign_in(client).headers["Set-Cookie"].split(";")[0]
    assert before != after


def test_the_api_never_accepts_the_session_cookie(client: FlaskClient) -> None:
    sign_in(client)
    assert client.get(MINE).status_code == 200
    assert client.get("/api/v1/referrals").status_code == 401


def test_a_session_ends_after_the_idle_time(client: FlaskClient, clock: FakeClock) -> None:
    sign_in(client)
    clock.advance(seconds=899)
    assert client.get(MINE).status_code == 200
    clock.advance(seconds=899)
    assert client.get(MINE).status_code == 200  # activity keeps it alive
    clock.advance(seconds=901)
    response = client.get(MINE)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{APP}/sign-in?next=")


def test_a_session_ends_after_its_lifetime_whatever_the_activity(
    client: FlaskClient, clock: FakeClock
) -> None:
    sign_in(client)
    for _ in range(34):  # 34 x 14 minutes: 7 h 56 min, active all along
        clock.advance(minutes=14)
        assert client.get(MINE).status_code == 200
    clock.advance(minutes=5)  # past the 8 hours
    assert client.get(MINE).status_code == 302


def test_signing_out_ends_the_session_here(client: FlaskClient, database: Database) -> None:
    sign_in(client)
    response = post(client, f"{APP}/sign-out", {}, page=MINE)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{APP}/signed-out")
    assert client.get(MINE).status_code == 302
    with database.sessions() as session:
        remaining = session.scalars(select(WebSession)).all()
    assert all(b"access_token" not in row.data for row in remaining)


def test_development_sign_in_is_refused_without_development_tokens(app: Flask) -> None:
    runtime: Runtime = app.extensions["referrals"]
    runtime.settings = runtime.settings.with_overrides(dev_tokens=False)
    client = app.test_client()
    assert client.get(f"{APP}/dev/sign-in").status_code == 404
    assert client.post(f"{APP}/dev/sign-in", data={"identity": AUDITOR}).status_code in (400, 404)


def test_sign_in_never_redirects_to_another_site(client: FlaskClient) -> None:
    for target in ("https://evil.example/", "//evil.example/app/", "/app/\\evil", "/elsewhere"):
        page = client.get(f"{APP}/dev/sign-in", query_string={"next": target})
        response = client.post(
            f"{APP}/dev/sign-in",
            data={
                "identity": WORKER,
                "next": target,
                "csrf_token": csrf(page),
            },
        )
        assert response.headers["Location"] == f"{APP}/"


def test_the_personal_number_never_reaches_the_session_table_in_clear(
    client: FlaskClient, database: Database
) -> None:
    sign_in(client)
    post(client, NEW, referral_form(legal_basis=None))  # a failed submit, then the next page
    with database.sessions() as session:
        blobs = b"".join(row.data for row in session.scalars(select(WebSession)))
    assert PNR.encode() not in blobs
    assert b"Testa" not in blobs


def test_an_unknown_page_is_a_page_too(client: FlaskClient) -> None:
    for path in ("/app/nowhere", "/app/referrals/not-a-uuid", "/app/audit/nowhere"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert "Sidan finns inte" in text(response)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert client.get("/api/v1/nowhere").mimetype == "application/problem+json"


def test_the_stylesheet_and_script_carry_no_session(client: FlaskClient) -> None:
    sign_in(client)
    for asset in ("app.css", "app.js"):
        with client.get(f"{APP}/static/{asset}") as response:
            assert response.status_code == 200
            assert "Set-Cookie" not in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"
