"""Per-request plumbing for views: who is calling, and a unit of work."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import current_app, g, request
from werkzeug.exceptions import UnsupportedMediaType

from referrals.api.inputs import check_headers, readable
from referrals.api.problems import status_for
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable, PendingAudit
from referrals.auth.authenticate import ScopeMissing, StepUpRequired
from referrals.auth.principal import ClaimedActor, Scope
from referrals.auth.tokens import claimed_actor
from referrals.domain.codes import BreakGlassReason
from referrals.runtime import Runtime
from referrals.services.context import Context
from referrals.services.errors import Unprocessable
from referrals.services.uow import UnitOfWork

P = ParamSpec("P")
R = TypeVar("R")


def runtime() -> Runtime:
    value = current_app.extensions["referrals"]
    assert isinstance(value, Runtime)
    return value


# URL arguments that name what a request acts on, and the audit target type of each.
TARGETS = {
    "referral_id": "referral",
    "unit_id": "unit",
    "rule_id": "routing-rule",
    "delivery_id": "delivery",
}


def authenticated(
    *scopes: Scope, audit: AuditAction, success: int = 200
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The entry of every API view: audit, authenticate, then the view.

    Put it above the flask-smorest decorators: an anonymous caller gets 401, not a
    validation error that would confirm what the endpoint expects.  Any one of
    ``scopes`` suffices.  A body that is not JSON is refused with 415: the argument
    parser would otherwise read it as an empty object and, say, create an empty draft.

    Every call produces exactly one audit event: the use case's commit writes it with the
    change (``success``), and any refusal or failure is recorded here before the error
    response is built.  If that record cannot be written the answer is 503.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            rt = runtime()
            pending = PendingAudit(action=audit, request_id=g.request_id, success_status=success)
            for argument, kind in TARGETS.items():
                if argument in kwargs:
                    pending.target(kind, kwargs[argument])
            g.audit = pending
            try:
                principal = rt.authenticator.authenticate(
                    request.headers, request.args.keys(), [s.value for s in scopes]
                )
                pending.actor = principal
                check_headers(request.headers)
                g.context = rt.context(principal, _break_glass_reason())
                if _has_body() and not request.is_json:
                    raise UnsupportedMediaType("request bodies must be application/json")
                result = view(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, ScopeMissing | StepUpRequired):
                    pending.actor = exc.principal
                if not pending.written:
                    if pending.actor is None:
                        pending.claimed = _readable_claims(
                            claimed_actor(request.headers.get("Authorization"))
                        )
                    rt.record_refusal(pending, status_for(exc))
                raise
            if not pending.written:
                # A use case answered without committing its audit event: fail closed.
                raise AuditUnavailable("the request was not recorded")
            return result

        doc: dict[str, Any] = getattr(wrapper, "_apidoc", {})
        doc.setdefault("manual_doc", {}).setdefault(
            "security", [{"bearerAuth": [s.value]} for s in scopes]
        )
        wrapper._apidoc = doc  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _readable_claims(claimed: ClaimedActor | None) -> ClaimedActor | None:
    """What a refused token claims, without what the audit trail cannot keep."""
    if claimed is None:
        return None
    return ClaimedActor(
        issuer=claimed.issuer if readable(claimed.issuer) else None,
        subject=claimed.subject if readable(claimed.subject) else None,
    )


BREAK_GLASS_HEADER = "X-Break-Glass-Reason"


def _break_glass_reason() -> BreakGlassReason | None:
    raw = request.headers.get(BREAK_GLASS_HEADER)
    if raw is None:
        return None
    try:
        return BreakGlassReason(raw.strip())
    except ValueError:
        codes = ", ".join(r.value for r in BreakGlassReason)
        raise Unprocessable(f"must be one of {codes}", field=BREAK_GLASS_HEADER) from None


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")


def caller() -> Context:
    context = g.context
    assert isinstance(context, Context)
    return context


def unit_of_work() -> UnitOfWork:
    return runtime().unit_of_work(audit=g.audit)
