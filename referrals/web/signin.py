"""Signing in and out, and the language switch.

Sign-in is OpenID Connect Authorization Code with PKCE (S256), state and nonce, by
authlib's Flask client as a backend-for-frontend: the tokens go from the provider to
this server and into the sealed server-side session; the browser only ever holds the
opaque session cookie.  Sign-out ends the session here and, when the provider offers an
``end_session_endpoint``, there too (RP-initiated logout).

In development only, "sign in as ..." mints a development token for a demo role and
unit straight into a new session (404 in production or with development tokens off).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from referrals.auth import devissuer
from referrals.auth.authenticate import AuthenticationFailed
from referrals.auth.principal import Principal, Role
from referrals.config import Settings
from referrals.services import seeding
from referrals.web import i18n, oidc
from referrals.web.pages import current_principal, end_session, runtime

bp = Blueprint("signin", __name__)

HOME = "/app/"
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


def init_app(app: Flask, settings: Settings) -> None:
    """Register the OIDC client when the web front end has one configured."""
    if not (settings.web_client_id and settings.oidc_issuer):
        return
    oauth = OAuth(app)
    app.extensions[oidc.CLIENT] = oauth.register(
        "idp",
        client_id=settings.web_client_id,
        client_secret=settings.web_client_secret,
        server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": settings.web_scope,
            # PKCE even for a confidential client (OAuth 2.0 Security BCP).
            "code_challenge_method": "S256",
            "timeout": settings.oidc_http_timeout,
        },
    )


def safe_next(target: str | None) -> str:
    """Only a path of our own pages: never another site (open redirect)."""
    if (
        not target
        or not target.startswith("/app/")
        or "//" in target
        or "\\" in target
        or any(ord(c) < 0x21 for c in target)
    ):
        return HOME
    return target


def _dev_sign_in_allowed() -> bool:
    settings = runtime().settings
    return settings.dev_tokens and not settings.is_production


@bp.get("/sign-in")
def page() -> str | BaseResponse:
    target = safe_next(request.args.get("next"))
    if current_principal() is not None:
        return redirect(target)
    return render_template(
        "sign_in.html",
        next=target,
        oidc=oidc.client() is not None,
        dev=_dev_sign_in_allowed(),
        expired=bool(session.get("previous_actor")),
        kept=bool(session.get("kept_form")),
    )


@bp.get("/sign-in/start")
def start() -> BaseResponse:
    client = oidc.client()
    if client is None:
        abort(404)
    session["next"] = safe_next(request.args.get("next"))
    settings = runtime().settings
    extra = {}
    if settings.web_resource:
        extra["resource"] = settings.web_resource
    if settings.oidc_required_acr:
        # Ask for an assurance the API accepts up front (OIDC Core §3.1.2.1), so a
        # caseworker is not signed in only to be refused; the API still checks the token.
        acr = {value for values in settings.oidc_required_acr.values() for value in values}
        extra["acr_values"] = " ".join(sorted(acr))
    response: BaseResponse = client.authorize_redirect(
        url_for("web.signin.callback", _external=True), ui_locales=i18n.language(), **extra
    )
    return response


@bp.get("/sign-in/callback")
def callback() -> str | BaseResponse | tuple[str, int]:
    client = oidc.client()
    if client is None:
        abort(404)
    try:
        token = client.authorize_access_token()
        found = runtime().authenticator.authenticate_token(token["access_token"], ())
    except (OAuthError, AuthenticationFailed, KeyError):
        # A stale or replayed callback, a refused login, or a token this API does not
        # accept (no roles, wrong audience): nothing is kept, the person may try again.
        return render_template("sign_in_failed.html"), 403
    target = session.get("next")
    establish(found, token)
    return redirect(safe_next(target if isinstance(target, str) else None))


def establish(found: Principal, token: dict[str, Any]) -> None:
    """A fresh session (new cookie value) for ``found``; a kept form comes along."""
    kept = {k: session[k] for k in ("kept_form", "previous_actor") if k in session}
    session.clear()
    session.update(kept)
    session.renew()  # type: ignore[attr-defined]
    session["actor"] = found.actor
    oidc.keep_tokens(token)


@bp.post("/sign-out")
def sign_out() -> BaseResponse:
    id_token = session.get("id_token")
    end_session(keep_actor=False)
    session.pop("csrf_token", None)
    session.pop("kept_form", None)
    client = oidc.client()
    signed_out = url_for("web.signin.signed_out", _external=True)
    if (
        client is not None
        and id_token
        and client.load_server_metadata().get("end_session_endpoint")
    ):
        response: BaseResponse = client.logout_redirect(
            post_logout_redirect_uri=signed_out, id_token_hint=id_token
        )
        return response
    return redirect(signed_out)


@bp.get("/signed-out")
def signed_out() -> str:
    return render_template("signed_out.html")


# --- development only --------------------------------------------------------------------


def demo_identities() -> list[tuple[Role, str | None]]:
    """Each demo role, with each seeded unit it can belong to."""
    units = seeding.packaged("demo")["units"]
    referrers = [u["id"] for u in units if u["kind"] == "referrer"]
    receivers = [u["id"] for u in units if u["kind"] == "receiver"]
    return [
        *((Role.YOUTH_WORKER, u) for u in referrers),
        *((Role.CASEWORKER, u) for u in receivers),
        *((Role.UNIT_LEAD, u) for u in receivers),
        (Role.AUDITOR, None),
    ]


@bp.route("/dev/sign-in", methods=["GET", "POST"])
def dev_sign_in() -> str | BaseResponse:
    if not _dev_sign_in_allowed():
        abort(404)
    identities = demo_identities()
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("dev_sign_in.html", identities=identities, next=target)
    chosen = request.form.get("identity", "")
    wanted = {f"{role.value}@{unit or ''}": (role, unit) for role, unit in identities}
    if chosen not in wanted:
        abort(400)
    role, unit = wanted[chosen]
    rt = runtime()
    key = devissuer.load_or_create_key(rt.instance_path)
    token = devissuer.mint(
        key,
        role=role,
        unit=unit,
        audience=rt.settings.oidc_audience,
        lifetime=rt.settings.web_session_lifetime,
    )
    establish(rt.authenticator.authenticate_token(token, ()), {"access_token": token})
    return redirect(target)


# --- language -----------------------------------------------------------------------------


@bp.get("/language")
def language() -> BaseResponse:
    chosen = request.args.get("lang")
    response = redirect(safe_next(request.args.get("next")))
    if chosen in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE,
            chosen,
            max_age=LANGUAGE_COOKIE_SECONDS,
            path="/",
            secure=runtime().settings.is_production,
            httponly=True,
            samesite="Lax",
        )
    return response


def sign_in_url(target: str) -> str:
    return url_for("web.signin.page") + "?" + urlencode({"next": target})
