"""An expired access token in a web session: renewed with the refresh token when there is
one, otherwise the person signs in again.  The provider here is a fake of authlib's
client (only its token endpoint matters); the tokens are real development tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.base_client import OAuthError
from flask import Flask
from flask.testing import FlaskClient

from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.web.oidc import CLIENT
from tests.web.helpers import MINE, sign_in, text

Mint = Callable[..., str]


@pytest.fixture
def mint(instance_path: Path, settings: Settings) -> Mint:
    def make(*, expired: bool, role: Role = Role.YOUTH_WORKER, unit: str = "ungdomsjouren") -> str:
        key = devissuer.load_or_create_key(instance_path)
        issued = time.time() - (7200 if expired else 0)
        return devissuer.mint(
            key, role=role, unit=unit, audience=settings.oidc_audience, lifetime=3600, now=issued
        )

    return make


class FakeProvider:
    """What the pages use of authlib's client: the refresh grant at the token endpoint."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    def fetch_access_token(self, **params: Any) -> dict[str, Any]:
        self.asked.append(params)
        if self.answer is None:
            raise OAuthError(error="invalid_grant")
        return self.answer


def _expire(client: FlaskClient, token: str, refresh_token: str | None) -> None:
    with client.session_transaction("/app/") as session:
        session["access_token"] = token
        if refresh_token is not None:
            session["refresh_token"] = refresh_token


def test_an_expired_token_is_renewed_with_the_refresh_token(
    app: Flask, client: FlaskClient, mint: Mint
) -> None:
    sign_in(client)
    provider = FakeProvider({"access_token": mint(expired=False), "refresh_token": "r-2"})
    app.extensions[CLIENT] = provider
    _expire(client, mint(expired=True), "r-1")
    assert client.get(MINE).status_code == 200
    assert provider.asked == [{"grant_type": "refresh_token", "refresh_token": "r-1"}]
    with client.session_transaction("/app/") as session:
        assert session["refresh_token"] == "r-2"
    assert client.get(MINE).status_code == 200
    assert len(provider.asked) == 1  # the renewed token is used from now on


def test_without_a_refresh_token_an_expired_token_ends_the_session(
    client: FlaskClient, mint: Mint
) -> None:
    sign_in(client)
    _expire(client, mint(expired=True), None)
    response = client.get(MINE)
    assert response.status_code == 302
    assert "/app/sign-in" in response.headers["Location"]


def test_a_refused_refresh_ends_the_session(app: Flask, client: FlaskClient, mint: Mint) -> None:
    sign_in(client)
    app.extensions[CLIENT] = FakeProvider(None)
    _expire(client, mint(expired=True), "r-1")
    assert client.get(MINE).status_code == 302


def test_a_refresh_never_switches_who_is_signed_in(
    app: Flask, client: FlaskClient, mint: Mint
) -> None:
    sign_in(client)
    someone_else = mint(expired=False, role=Role.CASEWORKER, unit="norrmalm")
    app.extensions[CLIENT] = FakeProvider({"access_token": someone_else})
    _expire(client, mint(expired=True), "r-1")
    response = client.get(MINE)
    assert response.status_code == 302
    assert "Mina remisser" not in text(response)
