"""Server-side web sessions behind Flask's ``session``.

The browser holds one opaque random value in a cookie; the server keeps everything else
in ``web_sessions`` (referrals/services/web_sessions.py), sealed under the keyring.  The
API never sees this: outside /app/ every request gets Flask's null session, so the
cookie cannot authenticate a call to /api/.

Flask-WTF (CSRF) and authlib (sign-in state, PKCE verifier, nonce) write into this same
session, so none of it travels to the browser either.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from referrals.runtime import Runtime
from referrals.services import web_sessions

PREFIX = "/app/"
# The stylesheet and script need no session: no database round trip for them.
STATIC = "/app/static/"
# An unchanged session is written back at most this often just to mark activity: the
# idle timeout is minutes, a write per page view would buy nothing.
TOUCH_EVERY = timedelta(seconds=60)
# ``__Host-`` makes the browser refuse the cookie unless Secure, Path=/ and no Domain:
# no subdomain and no plain-http page can plant or overwrite it.
SECURE_COOKIE = "__Host-referrals-session"
# Development over http://127.0.0.1 cannot use Secure (nor therefore ``__Host-``).
PLAIN_COOKIE = "referrals-session"
# Carried from an expired session into the next one: the CSRF token (so the form
# posted after expiry is still accepted and can be kept) and who was signed in (so a
# kept form is given back only to the same person).
CARRIED = ("csrf_token", "previous_actor", "kept_form")


class BrowserSession(CallbackDict[str, Any], SessionMixin):
    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        created_at: datetime | None = None,
        last_seen_at: datetime | None = None,
    ) -> None:
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.key = key  # the cookie value; None until first stored
        self.created_at = created_at
        self.last_seen_at = last_seen_at
        self.modified = False
        # Sign-in and sign-out issue a new cookie value (no session fixation).
        self.rotate = False
        # The stored session had expired (idle or absolute) when this request came in.
        self.expired = False

    def renew(self) -> None:
        """Use a new cookie value from this response on; the old row is deleted."""
        self.rotate = True
        self.modified = True


def cookie_name(runtime: Runtime) -> str:
    return SECURE_COOKIE if runtime.settings.is_production else PLAIN_COOKIE


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ServerSideSessions(SessionInterface):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def open_session(self, app: Flask, request: Request) -> BrowserSession | None:
        if not request.path.startswith(PREFIX) or request.path.startswith(STATIC):
            return None  # Flask's null session: nothing outside /app/ has a session
        rt = self._runtime
        value = request.cookies.get(cookie_name(rt))
        if not value or len(value) > 100:
            return BrowserSession()
        stored = web_sessions.load(
            rt.database, rt.vault, digest(value), now=rt.clock(), idle=self._idle()
        )
        if stored is None:
            return BrowserSession()
        if stored.expired:
            carried = {k: stored.data[k] for k in CARRIED if k in stored.data}
            if "actor" in stored.data:
                carried["previous_actor"] = stored.data["actor"]
            fresh = BrowserSession(carried)
            fresh.expired = True
            fresh.renew()
            fresh.key = value  # so that the old row is deleted on save
            return fresh
        return BrowserSession(
            stored.data,
            key=value,
            created_at=stored.created_at,
            last_seen_at=stored.last_seen_at,
        )

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, BrowserSession):
            return
        rt = self._runtime
        name = cookie_name(rt)
        secure = rt.settings.is_production
        if session.rotate and session.key is not None:
            web_sessions.delete(rt.database, digest(session.key))
            session.key = None
        if not session:
            if session.key is not None:
                web_sessions.delete(rt.database, digest(session.key))
            if session.key is not None or session.rotate:
                response.delete_cookie(name, path="/", secure=secure, httponly=True)
            return
        if session.key is None:
            session.key = secrets.token_urlsafe(32)
            session.created_at = None
        elif (
            not session.modified
            and session.last_seen_at is not None
            and rt.clock() - session.last_seen_at < TOUCH_EVERY
        ):
            return  # unchanged and recently marked active: the cookie stands as is
        lifetime = timedelta(seconds=rt.settings.web_session_lifetime)
        web_sessions.store(
            rt.database,
            rt.vault,
            digest(session.key),
            dict(session),
            now=rt.clock(),
            idle=self._idle(),
            lifetime=lifetime,
        )
        response.set_cookie(
            name,
            session.key,
            path="/",
            secure=secure,
            httponly=True,
            samesite="Lax",  # top-level navigations from the IdP back to us must carry it
        )
        response.vary.add("Cookie")

    def _idle(self) -> timedelta:
        return timedelta(seconds=self._runtime.settings.web_session_idle)
