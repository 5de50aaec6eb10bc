"""The web front end's OIDC client (authlib), and renewing its access token.

The access token kept in a session is short-lived (the IdP decides, often 5 minutes);
when it has expired and the provider gave a refresh token, a page renews it once,
server-side, before asking the person to sign in again.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.base_client import OAuthError
from flask import current_app, session
from requests import RequestException

CLIENT = "referrals_web_oidc"
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "expires_at")


def client() -> Any:
    """authlib's Flask OAuth 2 client for the configured IdP, or None without one."""
    return current_app.extensions.get(CLIENT)


def keep_tokens(token: dict[str, Any]) -> None:
    for name in TOKEN_FIELDS:
        if token.get(name) is not None:
            session[name] = token[name]


def refreshed_access_token() -> str | None:
    """A new access token from the session's refresh token, or None (sign in again)."""
    oauth = client()
    refresh_token = session.get("refresh_token")
    if oauth is None or not isinstance(refresh_token, str):
        return None
    try:
        token: dict[str, Any] = oauth.fetch_access_token(
            grant_type="refresh_token", refresh_token=refresh_token
        )
    except (OAuthError, RequestException, ValueError):
        return None
    access_token = token.get("access_token")
    if not isinstance(access_token, str):
        return None
    # A provider that rotates refresh tokens sends a new one; keep whichever is current.
    keep_tokens(token)
    return access_token
