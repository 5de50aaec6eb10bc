"""RFC 9457 problem details: the one error shape of the whole service.

Every error leaves through ``problem()``: framework errors (404 on an unknown path,
405, malformed JSON), validation errors, authentication and service errors, and any
unexpected exception, which becomes a bare 500 that echoes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from referrals.audit.recorder import AuditUnavailable
from referrals.auth.authenticate import (
    AuthenticationFailed,
    IdentityProviderUnavailable,
    ScopeMissing,
    StepUpRequired,
)
from referrals.crypto.aead import DecryptionError
from referrals.domain.errors import (
    ActionNotAllowed,
    DomainError,
    InvalidTransition,
)
from referrals.services.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "urn:referrals:problem:"
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    *,
    code: str | None = None,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code if code else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _authentication_failed(exc: AuthenticationFailed) -> Response:
    # The reason goes to the log only: telling an attacker which check failed helps them.
    log.info("authentication failed", extra={"reason": exc.reason, "path": request.url_rule})
    return problem(
        401,
        code="invalid-token",
        detail="A valid bearer access token is required in the Authorization header.",
        headers={
            "WWW-Authenticate": 'Bearer error="invalid_token"'
            if exc.credentials_sent
            else 'Bearer realm="referrals"'
        },
    )


def _step_up_required(exc: StepUpRequired) -> Response:
    # RFC 9470 §3: the client sends the person back to sign in with one of these.
    return problem(
        401,
        code="insufficient-user-authentication",
        detail="Sign in again with a stronger method (see acr_values).",
        headers={
            "WWW-Authenticate": 'Bearer error="insufficient_user_authentication", '
            f'error_description="A different authentication level is required", '
            f'acr_values="{" ".join(exc.acr_values)}"'
        },
    )


def _scope_missing(_exc: ScopeMissing) -> Response:
    return problem(
        403,
        code="insufficient-scope",
        detail="The access token lacks the scope this endpoint needs.",
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
    )


def _idp_unavailable(exc: IdentityProviderUnavailable) -> Response:
    log.warning("identity provider unavailable", extra={"reason": str(exc)})
    return problem(
        503, detail="The identity provider cannot be reached.", headers={"Retry-After": "5"}
    )


def _service_error(exc: ServiceError) -> Response:
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return problem(exc.status, code=exc.code.replace("_", "-"), detail=exc.message, errors=errors)


def status_for(exc: BaseException) -> int:
    """The status the handlers below answer ``exc`` with (the audit records it too)."""
    match exc:
        case AuthenticationFailed():
            return 401
        case ScopeMissing():
            return 403
        case IdentityProviderUnavailable() | AuditUnavailable() | OperationalError():
            return 503
        case ServiceError():
            return exc.status
        case InvalidTransition():
            return 409
        case ActionNotAllowed():
            return 403
        case DomainError():
            return 422
        case HTTPException():
            return exc.code or 500
        case _:
            return 500


def _audit_unavailable(_exc: AuditUnavailable) -> Response:
    # Fail closed: without its audit event, nothing was changed and nothing is returned.
    log.error("audit event could not be written; request refused")
    return problem(
        503,
        code="audit-unavailable",
        detail="The audit trail cannot be written right now; nothing was done.",
        headers={"Retry-After": "5"},
    )


def _database_busy(_exc: OperationalError) -> Response:
    # The database is unreachable, or a lock or deadlock ended the transaction: it was rolled
    # back whole, so the client may simply try again.  The message (with its SQL) is not
    # logged: bound values are hidden, but statements name tables and columns.
    log.error("database unavailable or busy", extra={"path": str(request.url_rule)})
    return problem(
        503,
        code="database-busy",
        detail="The database is busy or unreachable; nothing was done. Try again.",
        headers={"Retry-After": "2"},
    )


def _domain_error(exc: DomainError) -> Response:
    status = status_for(exc)
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return problem(status, code=exc.code.replace("_", "-"), detail=exc.message, errors=errors)


def _http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    headers: dict[str, str] = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    if messages:
        errors = list(_flatten(messages))
        first = errors[0]
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem(status, code="validation", detail=detail, errors=errors)
    return problem(status, detail=exc.description if status < 500 else None, headers=headers)


def _integrity_failure(_exc: DecryptionError) -> Response:
    # A sealed field did not open: tampering, a row copied or swapped, or a missing key.
    # Nothing of the record is returned; operators get the event in the log.
    log.error("sealed data failed its integrity check", extra={"path": str(request.url_rule)})
    return problem(
        500,
        code="integrity-error",
        detail="Stored data failed its integrity check; nothing of it is returned.",
    )


def _unexpected(exc: Exception) -> Response:
    # Logged with the traceback for operators; the client learns nothing about it.
    log.exception("unhandled error", extra={"path": str(request.url_rule)})
    return problem(500)


def _flatten(messages: Any, path: str = "") -> Iterator[dict[str, str]]:
    """webargs nests messages by location then field: {"json": {"subject": {...}}}."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if not path and name in {"json", "query", "headers", "form", "path", "view_args"}:
                yield from _flatten(value, "")
            elif name == "_schema":
                yield from _flatten(value, path)
            else:
                yield from _flatten(value, f"{path}.{name}" if path else name)
    elif isinstance(messages, list | tuple):
        for item in messages:
            yield from _flatten(item, path)
    else:
        yield {"field": path, "message": str(messages)}


def init_app(app: Flask) -> None:
    app.register_error_handler(AuthenticationFailed, _authentication_failed)
    app.register_error_handler(ScopeMissing, _scope_missing)
    app.register_error_handler(StepUpRequired, _step_up_required)
    app.register_error_handler(IdentityProviderUnavailable, _idp_unavailable)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(DecryptionError, _integrity_failure)
    app.register_error_handler(AuditUnavailable, _audit_unavailable)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(OperationalError, _database_busy)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)
