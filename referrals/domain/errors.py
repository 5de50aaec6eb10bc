"""Errors raised by domain rules.

Each error carries a stable machine ``code`` (clients and the problem+json mapping key on it,
so it never changes) and a ``message`` that is safe to show to a client: it names the rule
that failed, never the personal data that failed it.
"""

from typing import ClassVar


class DomainError(Exception):
    """A request breaks a domain rule; the API maps it to a 4xx problem response."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # JSON path of the request field at fault, so the API can point at it.
        self.field = field


class InvalidTransition(DomainError):
    """The action does not leave the referral's current status (a conflict, not a denial)."""

    code: ClassVar[str] = "invalid_transition"


class ActionNotAllowed(DomainError):
    """This side of the referral (sender or receiver) may not perform the action."""

    code: ClassVar[str] = "action_not_allowed"


class MissingRequirement(DomainError):
    """An input the action needs is missing or unusable; ``field`` names it."""

    code: ClassVar[str] = "missing_requirement"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


class InvalidPersonalNumber(DomainError):
    """A personal number failed validation; the message names the rule, never the number."""

    code: ClassVar[str] = "invalid_personal_number"

    def __init__(self, message: str, *, field: str | None = "subject.personal_number") -> None:
        super().__init__(message, field=field)
