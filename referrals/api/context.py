"""Per-request plumbing for views: who is calling, and a unit of work."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import current_app, g, request
from werkzeug.exceptions import UnsupportedMediaType

from referrals.auth.principal import Scope
from referrals.runtime import Runtime
from referrals.services.context import Context
from referrals.services.uow import UnitOfWork

P = ParamSpec("P")
R = TypeVar("R")


def runtime() -> Runtime:
    value = current_app.extensions["referrals"]
    assert isinstance(value, Runtime)
    return value


def authenticated(*scopes: Scope) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Authenticate before anything else, body parsing included.

    Put it above the flask-smorest decorators: an anonymous caller gets 401, not a
    validation error that would confirm what the endpoint expects.  Any one of
    ``scopes`` suffices.  Then a body that is not JSON is refused with 415: the
    argument parser would otherwise read it as an empty object and, say, create an
    empty draft.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            rt = runtime()
            principal = rt.authenticator.authenticate(
                request.headers, request.args.keys(), [s.value for s in scopes]
            )
            g.context = rt.context(principal)
            if _has_body() and not request.is_json:
                raise UnsupportedMediaType("request bodies must be application/json")
            return view(*args, **kwargs)

        doc: dict[str, Any] = getattr(wrapper, "_apidoc", {})
        doc.setdefault("manual_doc", {}).setdefault(
            "security", [{"bearerAuth": [s.value]} for s in scopes]
        )
        wrapper._apidoc = doc  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")


def caller() -> Context:
    context = g.context
    assert isinstance(context, Context)
    return context


def unit_of_work() -> UnitOfWork:
    return runtime().unit_of_work()
