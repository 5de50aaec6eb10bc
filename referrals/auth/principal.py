"""The authenticated caller, as every layer below the HTTP views sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    YOUTH_WORKER = "youth_worker"
    CASEWORKER = "caseworker"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Added with the privacy lifecycle: README "Roles and what each may see".
    UNIT_LEAD = "unit_lead"
    PRIVACY_OFFICER = "privacy_officer"
    ANALYST = "analyst"


class Scope(StrEnum):
    """OAuth scopes gate endpoint groups; roles and unit gate objects and fields."""

    REFERRALS_READ = "referrals:read"
    REFERRALS_WRITE = "referrals:write"
    AUDIT_READ = "audit:read"
    ADMIN = "admin"
    PRIVACY = "privacy"
    STATISTICS_READ = "statistics:read"


@dataclass(frozen=True)
class Principal:
    issuer: str
    subject: str
    client_id: str | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    unit: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """Who did it, unambiguous across issuers: stored on events and notes."""
        return f"{self.issuer}|{self.subject}"

    def names_are_storable(self) -> bool:
        """No control character, NUL or lone surrogate in the names an audit row keeps."""
        names = (self.issuer, self.subject, self.client_id, self.unit)
        return all(name is None or storable(name) for name in names)

    def has_role(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class ClaimedActor:
    """What a refused token said about its holder: recorded in the audit, never trusted."""

    issuer: str | None
    subject: str | None


def storable(text: str) -> bool:
    """Text a log line or an audit column can hold.

    ``isprintable`` is False for NUL and every other control character, and for lone
    surrogates (category Cs), which no database encoding stores."""
    return text.isprintable()
