"""What an audit event says was done: ``subject:action`` tags, never renamed."""

from __future__ import annotations

from enum import StrEnum

from referrals.domain.codes import Action


class AuditAction(StrEnum):
    REFERRAL_LIST = "referral:list"
    REFERRAL_CREATE = "referral:create"
    REFERRAL_READ = "referral:read"
    REFERRAL_UPDATE = "referral:update"
    REFERRAL_DELETE = "referral:delete"
    REFERRAL_SEARCH = "referral:search"
    REFERRAL_EVENTS = "referral:events"
    REFERRAL_ERASE = "referral:erase"
    # Two-phase disclosure and consent (referrals/services/disclosure.py, consent.py).
    REFERRAL_REVEAL = "referral:reveal"
    REFERRAL_WITHDRAW_CONSENT = "referral:withdraw-consent"
    NOTE_LIST = "note:list"
    NOTE_CREATE = "note:create"
    UNIT_LIST = "unit:list"
    UNIT_READ = "unit:read"
    UNIT_CREATE = "unit:create"
    UNIT_UPDATE = "unit:update"
    ROUTING_RULES_READ = "routing:rules-read"
    ROUTING_VERSIONS = "routing:versions"
    ROUTING_RULE_CREATE = "routing:rule-create"
    ROUTING_RULE_UPDATE = "routing:rule-update"
    ROUTING_RULE_DELETE = "routing:rule-delete"
    ROUTING_PREVIEW = "routing:preview"
    DELIVERY_LIST = "delivery:list"
    DELIVERY_REPLAY = "delivery:replay"
    REFERRAL_ACCESS_LOG = "referral:access-log"
    AUDIT_SEARCH = "audit:search"
    AUDIT_VERIFY = "audit:verify"
    AUDIT_CHECKPOINTS = "audit:checkpoints"
    # The privacy lifecycle: a data subject's export (naming every referral it disclosed)
    # and suppressed statistics (no targets: they name no referral).
    PRIVACY_SUBJECT_ACCESS = "privacy:subject-access"
    STATISTICS_READ = "statistics:read"
    REFERRAL_SUBMIT = "referral:submit"
    REFERRAL_ACCEPT = "referral:accept"
    REFERRAL_DECLINE = "referral:decline"
    REFERRAL_REDIRECT = "referral:redirect"
    REFERRAL_CANCEL = "referral:cancel"
    REFERRAL_START = "referral:start"
    REFERRAL_HOLD = "referral:hold"
    REFERRAL_RESUME = "referral:resume"
    REFERRAL_COMPLETE = "referral:complete"
    REFERRAL_FAIL = "referral:fail"
    REFERRAL_MARK_ERROR = "referral:mark-error"
    # Retention and legal holds (privacy officers, auditors; the worker's erasures are
    # ``referral:erase`` with the reason ``retention_expired``).
    REFERRAL_LEGAL_HOLD = "referral:legal-hold"
    REFERRAL_LEGAL_HOLD_RELEASE = "referral:legal-hold-release"
    PRIVACY_RETENTION = "privacy:retention"
    # Caseloads that move (revision 0009).
    REFERRAL_ASSIGN = "referral:assign"
    UNIT_REASSIGN = "unit:reassign"
    # Operators' command-line jobs (``referrals ...``).
    KEYS_ROTATE = "keys:rotate"
    KEYS_REWRAP = "keys:rewrap"
    KEYS_RETIRE = "keys:retire"
    SEED_APPLY = "seed:apply"
    REFERRALS_IMPORT = "referrals:import"
    DB_HARDEN = "db:harden"
    DB_UPGRADE = "db:upgrade"


def for_transition(action: Action) -> AuditAction:
    return AuditAction(f"referral:{action.value}")


class Outcome(StrEnum):
    ALLOWED = "allowed"
    # Refused: no credentials, insufficient scope or role, or outside the caller's scope.
    DENIED = "denied"
    # Anything else that did not complete: invalid input, a conflict, a server fault.
    ERROR = "error"


def outcome_of(http_status: int) -> Outcome:
    if http_status < 400:
        return Outcome.ALLOWED
    if http_status in (401, 403, 404):
        return Outcome.DENIED
    return Outcome.ERROR
