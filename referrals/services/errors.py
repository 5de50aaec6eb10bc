"""Failures a use case reports; the HTTP layer maps each to one status code."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    """Absent, or outside the caller's scope: the two are indistinguishable on purpose."""

    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PreconditionFailed(ServiceError):
    status = 412
    code = "precondition_failed"


class PreconditionRequired(ServiceError):
    status = 428
    code = "precondition_required"


class Unprocessable(ServiceError):
    status = 422
    code = "unprocessable"
