"""The web front end: server-rendered pages for people, over the API's own use cases.

Routes (all under ``/app/``; auditors' under ``/app/audit/``):

| route | what |
|---|---|
| ``GET /app/`` | home: youth workers to their referrals, auditors to the chain's state |
| ``GET /app/sign-in?next=`` | sign-in page (OIDC; in development also "sign in as ...") |
| ``GET /app/sign-in/start``, ``GET /app/sign-in/callback`` | OIDC Authorization Code + PKCE |
| ``POST /app/sign-out``, ``GET /app/signed-out`` | sign out here and at the provider |
| ``GET, POST /app/dev/sign-in`` | development only: sign in as a demo role (404 otherwise) |
| ``GET /app/language?lang=sv|en&next=`` | switch language (a cookie with the code only) |
| ``GET /app/referrals`` | my referrals: status, deadline, the receiving unit's decision |
| ``GET, POST /app/referrals/new`` | new referral: save as draft or submit |
| ``GET, POST /app/referrals/search`` | find referrals by personal number (in the POST body only) |
| ``GET /app/referrals/<id>`` | one referral: details, timeline, shared notes, actions |
| ``GET, POST /app/referrals/<id>/edit`` | edit a draft (and submit it) |
| ``POST /app/referrals/<id>/notes`` | add a note |
| ``POST /app/referrals/<id>/cancel`` | cancel, with a reason |
| ``POST /app/referrals/<id>/reveal`` | the receiving unit reveals the identity before deciding |
| ``POST /app/referrals/<id>/withdraw-consent`` | the sender records that consent was withdrawn |
| ``POST /app/referrals/<id>/delete`` | delete a draft |
| ``GET /app/audit/`` | the audit chain: verification, newest checkpoint, unsealed events |
| ``GET /app/audit/events`` | event search with the API's filters |
| ``GET /app/audit/break-glass`` | emergency accesses to review |
| ``GET /app/audit/referrals/<id>`` | a referral's access log |
| ``GET /app/static/<file>`` | the one stylesheet and the small script |

Form fields are named after the API body (``subject-personal_number`` for
``subject.personal_number``) and their ids equal their names.  Every response under
/app/ carries a strict CSP, ``Cache-Control: no-store`` and no-referrer; every POST
needs the CSRF token of the server-side session (referrals/web/security.py).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, render_template
from werkzeug.exceptions import HTTPException

from referrals.api.problems import status_for
from referrals.audit.recorder import AuditUnavailable
from referrals.auth.authenticate import IdentityProviderUnavailable, ScopeMissing
from referrals.domain.errors import DomainError
from referrals.runtime import Runtime
from referrals.services.errors import ServiceError
from referrals.web import audit, i18n, referrals, security, signin, templating
from referrals.web.sessions import ServerSideSessions

log = logging.getLogger(__name__)


def _error_page(exc: Exception) -> tuple[str, int]:
    status = status_for(exc)
    if status >= 500:
        # The type only: an exception's text may quote what was typed.
        log.error("page failed", extra={"error": type(exc).__name__})
    if status >= 500 and not isinstance(exc, AuditUnavailable | IdentityProviderUnavailable):
        status = 500
    # The message is ours, by status; an exception's own text never reaches the page.
    return render_template("error.html", status=status), status


def _blueprint() -> Blueprint:
    web = Blueprint(
        "web",
        __name__,
        url_prefix="/app",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    web.before_request(security.check_post)
    templating.init_blueprint(web)
    web.after_request(security.add_headers)
    for error in (
        ServiceError,
        DomainError,
        HTTPException,
        ScopeMissing,
        AuditUnavailable,
        IdentityProviderUnavailable,
        Exception,
    ):
        web.register_error_handler(error, _error_page)
    web.register_blueprint(signin.bp)
    web.register_blueprint(referrals.bp)
    web.register_blueprint(audit.bp, url_prefix="/audit")
    return web


def init_app(app: Flask, runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.is_production and not settings.web_client_id:
        return  # no sign-in possible: no pages at all
    app.session_interface = ServerSideSessions(runtime)
    security.init_app(app, settings, runtime.instance_path)
    i18n.init_app(app)
    signin.init_app(app, settings)
    app.register_blueprint(_blueprint())
