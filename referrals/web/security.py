"""What every /app/ response and form post gets, whatever the page.

- Headers: a strict Content-Security-Policy (our own origin only, no inline script or
  style), no framing, no caching (pages carry case data), no referrer.
- Cross-site posts: Flask-WTF's synchroniser token, bound to the server-side session,
  on every POST; before it, the browser's own word on where the post came from
  (``Sec-Fetch-Site``, ``Origin``), so a forged post is refused even if a token leaked.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import Forbidden

from referrals.config import ConfigError, Settings

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CSP_KEY = "referrals_web_csp"
HEADERS = {
    # Every page may carry case data; nothing of it may stay in a cache or history.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SECRET_FILE = "web-secret-key"  # noqa: S105  (a file name, not a secret)


def secret_key(settings: Settings, instance_path: Path) -> str:
    """REFERRALS_WEB_SECRET_KEY, or in development a generated one kept 0600."""
    if settings.web_secret_key:
        return settings.web_secret_key
    if settings.is_production:
        raise ConfigError("the web front end needs REFERRALS_WEB_SECRET_KEY in production")
    path = instance_path / SECRET_FILE
    if not path.exists():
        try:
            with path.open("x") as handle:  # another worker may have won the race
                path.chmod(0o600)
                handle.write(secrets.token_urlsafe(48))
        except FileExistsError:
            pass
    return path.read_text().strip()


def content_security_policy(settings: Settings) -> str:
    """Our own origin only; with an IdP, its origin may also receive a form's redirect.

    ``form-action`` governs the redirects that follow a form post too: signing out
    posts here and is redirected to the IdP's end-session endpoint, which would be
    blocked without it.  Nothing is ever loaded from the IdP."""
    if not (settings.web_client_id and settings.oidc_issuer):
        return CONTENT_SECURITY_POLICY
    parts = urlsplit(settings.oidc_issuer)
    issuer_origin = f"{parts.scheme}://{parts.netloc}"
    return CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {issuer_origin}"
    )


def init_app(app: Flask, settings: Settings, instance_path: Path) -> None:
    app.extensions[CSP_KEY] = content_security_policy(settings)
    app.config.update(
        SECRET_KEY=secret_key(settings, instance_path),
        # Checked by the web blueprint only: the API is bearer-only and has no forms.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as the server-side session it is bound to.
        WTF_CSRF_TIME_LIMIT=None,
        # Flask-WTF's https check wants a Referer, which our no-referrer policy withholds;
        # check_post's Sec-Fetch-Site and Origin checks take its place.
        WTF_CSRF_SSL_STRICT=False,
    )
    CSRFProtect(app)


def check_post() -> None:
    """Refuse a state-changing request that a browser says came from elsewhere."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("cross-site form post")
    origin = request.headers.get("Origin")
    # Under Referrer-Policy: no-referrer browsers send "Origin: null" even on our own
    # posts, so "null" says nothing; Sec-Fetch-Site above still does.  Host and port
    # only: behind a TLS-terminating proxy the scheme seen here is http.
    if origin not in (None, "null") and urlsplit(origin).netloc != request.host:
        raise Forbidden("cross-origin form post")
    protector = current_app.extensions["csrf"]
    assert isinstance(protector, CSRFProtect)
    protector.protect()


def add_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = current_app.extensions[CSP_KEY]
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response
