"""Sign-in through the real test OpenID Provider: what leaves for the provider, and what
a forged answer gets.  (The whole round trip through its login page is driven by the
browser tests.)"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals import create_app
from referrals.config import Settings
from referrals.db.engine import Database
from referrals.db.models import AuditEvent
from tests.support.clock import FakeClock
from tests.support.idp import RestartableIdP, TestIdP
from tests.web.helpers import APP, MINE, text


@pytest.fixture
def oidc_app(
    oidc_provider: TestIdP, database: Database, clock: FakeClock, instance_path: Path
) -> Flask:
    settings = Settings(
        instance_path=instance_path,
        oidc_issuer=oidc_provider.issuer,
        web_client_id="referrals-web",
        web_client_secret="test-secret-referrals-web",
        web_resource="urn:referrals-api",
    )
    return create_app(settings, database=database, clock=clock)


def _start(client: FlaskClient) -> dict[str, list[str]]:
    response = client.get(f"{APP}/sign-in/start", query_string={"next": MINE})
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)


def test_sign_in_asks_for_the_required_acr_when_configured(
    oidc_app: Flask, database: Database, clock: FakeClock, instance_path: Path
) -> None:
    assert "acr_values" not in _start(oidc_app.test_client())  # off by default
    settings = oidc_app.extensions["referrals"].settings.with_overrides(
        oidc_required_acr={"caseworker": ("urn:b",), "youth_worker": ("urn:a", "urn:b")}
    )
    strict = create_app(settings, database=database, clock=clock)
    assert _start(strict.test_client())["acr_values"] == ["urn:a urn:b"]


def test_sign_in_asks_for_a_code_with_pkce_state_and_nonce(
    oidc_app: Flask, oidc_provider: TestIdP
) -> None:
    client = oidc_app.test_client()
    assert "/app/sign-in/start" in text(client.get(f"{APP}/sign-in"))
    response = client.get(f"{APP}/sign-in/start", query_string={"next": MINE})
    location = response.headers["Location"]
    assert location.startswith(oidc_provider.issuer)
    query = parse_qs(urlsplit(location).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["referrals-web"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 20
    assert len(query["nonce"][0]) >= 20
    assert query["resource"] == ["urn:referrals-api"]
    assert query["redirect_uri"] == ["http://localhost/app/sign-in/callback"]
    assert "openid" in query["scope"][0].split()
    # The browser gets an opaque cookie; the verifier and nonce stay on the server.
    cookie = response.headers["Set-Cookie"]
    value = cookie.split(";")[0].split("=", 1)[1]
    assert query["state"][0] not in cookie
    assert len(value) < 60


def test_each_sign_in_gets_its_own_state_and_challenge(oidc_app: Flask) -> None:
    first, second = _start(oidc_app.test_client()), _start(oidc_app.test_client())
    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


@pytest.mark.parametrize("forged", ["state-that-was-never-issued", None])
def test_a_callback_with_a_state_we_did_not_issue_signs_nobody_in(
    oidc_app: Flask, forged: str | None
) -> None:
    client = oidc_app.test_client()
    issued = _start(client)
    state = forged or issued["state"][0]
    other = oidc_app.test_client() if forged is None else client  # another browser
    response = other.get(
        f"{APP}/sign-in/callback", query_string={"code": "stolen-code", "state": state}
    )
    assert response.status_code == 403
    assert other.get(MINE).status_code == 302


def test_an_error_from_the_provider_signs_nobody_in(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    issued = _start(client)
    response = client.get(
        f"{APP}/sign-in/callback",
        query_string={"error": "access_denied", "state": issued["state"][0]},
    )
    assert response.status_code == 403
    assert client.get(MINE).status_code == 302


def test_only_the_providers_origin_is_added_and_only_to_form_action(
    oidc_app: Flask, oidc_provider: TestIdP
) -> None:
    """Signing out posts here and is redirected to the provider's end-session endpoint:
    the browser applies form-action to that redirect too."""
    parts = urlsplit(oidc_provider.issuer)
    policy = oidc_app.test_client().get(f"{APP}/sign-in").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["form-action"] == f"'self' {parts.scheme}://{parts.netloc}"
    others = [v for k, v in directives.items() if k != "form-action"]
    assert all(parts.netloc not in v for v in others)
    assert directives["frame-ancestors"] == "'none'"


def test_a_page_answers_503_and_is_audited_when_the_provider_is_unreachable(
    restartable_idp: RestartableIdP,
    database: Database,
    clock: FakeClock,
    instance_path: Path,
) -> None:
    idp = restartable_idp.start()
    token = idp.token("ungdomsjouren-app")
    settings = Settings(
        instance_path=instance_path,
        oidc_issuer=idp.issuer,
        web_client_id="referrals-web",
        oidc_jwks_refetch_interval=0,
    )
    app = create_app(settings, database=database, clock=clock)
    restartable_idp.stop()  # no keys were ever fetched: none are cached
    client = app.test_client()
    with client.session_transaction("/app/") as session:
        session["access_token"] = token
    response = client.get(MINE)
    assert response.status_code == 503
    with database.sessions() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.http_status == 503)).all()
    assert [(e.action, e.outcome) for e in events] == [("referral:list", "error")]
