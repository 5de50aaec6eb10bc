"""Per-request plumbing for pages: who is signed in, and audited use cases.

A page finds its caller the way the API does: the access token kept in the server-side
session goes through the same ``Authenticator`` (issuer, audience, signature, expiry,
scopes), giving the same ``Principal``.  Each use case a page runs is audited exactly as
the matching API call: one event per call, allowed or refused, written with the change
or, on refusal, by ``Runtime.record_refusal`` - the API's own path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from flask import current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from referrals.api.problems import status_for
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable, PendingAudit
from referrals.auth.authenticate import (
    AuthenticationFailed,
    IdentityProviderUnavailable,
    ScopeMissing,
)
from referrals.auth.principal import Principal, Scope
from referrals.runtime import Runtime
from referrals.services.context import Context
from referrals.services.uow import UnitOfWork
from referrals.web import oidc

P = ParamSpec("P")
R = TypeVar("R")

# A form posted after the session expired is kept (server-side) this long for the same
# person to sign in again and find it restored.
KEPT_FORM_SECONDS = 30 * 60


def runtime() -> Runtime:
    value = current_app.extensions["referrals"]
    assert isinstance(value, Runtime)
    return value


def principal() -> Principal:
    value = g.principal
    assert isinstance(value, Principal)
    return value


def caller() -> Context:
    value = g.context
    assert isinstance(value, Context)
    return value


def current_principal(scopes: tuple[Scope, ...] = ()) -> Principal | None:
    """The signed-in caller, or None; a token that no longer validates ends the session."""
    token = session.get("access_token")
    if not isinstance(token, str):
        return None
    authenticator = runtime().authenticator
    wanted = [s.value for s in scopes]
    try:
        return authenticator.authenticate_token(token, wanted)
    except AuthenticationFailed:
        pass
    renewed = oidc.refreshed_access_token()
    if renewed is not None:
        try:
            found = authenticator.authenticate_token(renewed, wanted)
        except AuthenticationFailed:
            found = None
        # The same person, or nobody: a refresh never switches who is signed in.
        if found is not None and found.actor == session.get("actor"):
            return found
    # Expired and not renewable: keep only what an expired session carries (the CSRF
    # token, who it was, a kept form), so a form posted now is still kept for them.
    end_session(keep_actor=True)
    return None


def end_session(*, keep_actor: bool) -> None:
    actor = session.get("actor")
    kept = {k: session[k] for k in ("csrf_token", "kept_form") if k in session}
    session.clear()
    session.update(kept)
    if keep_actor and actor:
        session["previous_actor"] = actor
    renew = getattr(session, "renew", None)
    if callable(renew):
        renew()


def signed_in(
    *scopes: Scope, audit: AuditAction | None = None, keep_form: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """The entry of every page that needs a caller.

    Anyone not signed in is sent to sign in (and back here afterwards).  A refusal of a
    page that would disclose case data (``audit``) is recorded as the API records a 401
    or 403.  With ``keep_form``, a form posted without a valid session is kept for the
    same person to find again after signing in.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            rt = runtime()
            try:
                caller_ = current_principal(scopes)
            except ScopeMissing as exc:
                if audit is not None:
                    _refuse(rt, audit, kwargs, exc.principal, 403)
                raise
            except IdentityProviderUnavailable:
                if audit is not None:
                    _refuse(rt, audit, kwargs, None, 503)
                raise
            if caller_ is None:
                if audit is not None:
                    _refuse(rt, audit, kwargs, None, 401)
                if keep_form and request.method == "POST":
                    keep_posted_form()
                target = request.path if request.method == "GET" or keep_form else _parent()
                return redirect(url_for("web.signin.page") + "?" + urlencode({"next": target}))
            g.principal = caller_
            g.context = rt.context(caller_)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _refuse(
    rt: Runtime,
    action: AuditAction,
    kwargs: dict[str, Any],
    actor: Principal | None,
    status: int,
) -> None:
    pending = PendingAudit(action=action, request_id=g.request_id, success_status=200)
    pending.actor = actor
    if "referral_id" in kwargs:
        pending.target("referral", kwargs["referral_id"])
    rt.record_refusal(pending, status)


def _parent() -> str:
    """After signing in, an action's page rather than the action (a POST-only address)."""
    return request.path.rsplit("/", 1)[0]


def _form_page() -> str:
    """Where the person comes back to after signing in: forms post to their own page."""
    return request.path


@contextmanager
def audited(
    action: AuditAction, *, referral: object = None, success: int = 200
) -> Iterator[UnitOfWork]:
    """A unit of work audited like the API call ``action``.

    The use case's commit writes the event with its change; a use case that fails or is
    refused is recorded here before the error reaches the page, and if that record
    cannot be written the page fails (503) - the same fail-closed rule as the API."""
    rt = runtime()
    pending = PendingAudit(
        action=action, request_id=g.request_id, success_status=success, actor=principal()
    )
    if referral is not None:
        pending.target("referral", referral)
    try:
        with rt.unit_of_work(audit=pending) as uow:
            yield uow
    except Exception as exc:
        if not pending.written:
            rt.record_refusal(pending, status_for(exc))
        raise
    if not pending.written:
        raise AuditUnavailable("the page's use case was not recorded")


def keep_posted_form() -> None:
    """Keep what was typed, server-side and sealed with the session (never in the browser).

    Only the form's fields are kept (not the CSRF token, not the button), with the page
    it belongs to and the time, so it can be offered back once and only for a while."""
    fields = {
        key: request.form.getlist(key)
        for key in request.form
        if key not in ("csrf_token", "action")
    }
    session["kept_form"] = {
        "page": _form_page(),
        "fields": fields,
        "at": runtime().clock().timestamp(),
    }


def take_kept_form(page: str) -> dict[str, list[str]] | None:
    """The form kept for ``page``, once, and only for the person who typed it."""
    kept = session.get("kept_form")
    if not isinstance(kept, dict) or kept.get("page") != page:
        return None
    session.pop("kept_form")
    owner = session.get("previous_actor")
    fresh = runtime().clock().timestamp() - float(kept.get("at", 0)) < KEPT_FORM_SECONDS
    if owner != principal().actor or not fresh:
        return None
    fields = kept.get("fields")
    return fields if isinstance(fields, dict) else None
