"""The authorization matrix: every endpoint x every kind of caller x the referral's state.

The expected answers in ``MATRIX`` are written out by hand from README: Roles (roles and what
each may see), §2 (who may take which action, from which state), §6 (routing and the
outbox) and §7 (the endpoints).
They are deliberately *not* derived from ``referrals/auth/policy.py``: the point is an
independent statement of the design that the policy is checked against.

The endpoints are enumerated from the app's URL map at test time, so an endpoint cannot
ship without a row here, and a row cannot outlive its endpoint.

Each case makes a fresh referral in the state the request needs, with a valid body and
the current ``If-Match``, so the only variable is *who* calls.  Every answer is checked
exactly (status, problem+json body), and so is the database: a denied request changes
nothing, an allowed one changes exactly what it should.  A 404 must be indistinguishable
from the answer for a referral that does not exist (no existence leak).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import (
    LegalHold,
    Note,
    OutboxMessage,
    Referral,
    RoutingRuleSet,
    Unit,
)

API = "/api/v1"
REFERRALS = "/referrals"
REFERRAL = "/referrals/<uuid:referral_id>"
SEARCH = "/referrals/search"
AUDIT_EVENTS = "/audit/events"
AUDIT_VERIFY = "/audit/verify"
AUDIT_CHECKPOINTS = "/audit/checkpoints"
UNITS = "/units"
UNIT = "/units/<slug:unit_id>"
ROUTING_RULES = "/routing-rules"
ROUTING_VERSIONS = "/routing-rules/versions"
ROUTING_RULE = "/routing-rules/<uuid:rule_id>"
PREVIEW = "/routing/preview"
DELIVERIES = "/admin/deliveries"
REPLAY = "/admin/deliveries/<uuid:delivery_id>/replay"
LEGAL_HOLD = "/referrals/<uuid:referral_id>/legal-hold"
RETENTION = "/privacy/retention"
SUBJECT_ACCESS = "/privacy/subject-access"
STATISTICS = "/statistics"
# The URL arguments naming the object a request acts on (filled in by ``request_for``).
OBJECT_PLACEHOLDERS = ("<uuid:referral_id>", "<uuid:rule_id>", "<uuid:delivery_id>")
PROBLEM_JSON = "application/problem+json"
PROBLEM = "urn:referrals:problem:"

# --- who calls -------------------------------------------------------------------------

CALLERS: dict[str, tuple[str, str | None]] = {
    "yw_own": ("youth_worker", "ungdomsjouren"),  # the sending unit
    "yw_other": ("youth_worker", "faltgruppen"),  # another referring unit
    "cw_own": ("caseworker", "norrmalm"),  # the receiving unit
    "cw_other": ("caseworker", "sodermalm"),  # another receiving unit
    "auditor": ("auditor", None),
    "admin": ("admin", None),
    "yw_nounit": ("youth_worker", None),  # a case role, but no unit claim
    "cw_nounit": ("caseworker", None),
    # The privacy lifecycle's roles (README: Roles).  The unit lead of the receiving unit
    # may what its caseworker may (its column reads as cw_own's), plus reassigning.
    "privacy": ("privacy_officer", None),  # scope privacy: holds, retention, exports
    "analyst": ("analyst", None),
    "lead_own": ("unit_lead", "norrmalm"),
}
SIDE_OF = {
    "yw_own": "sender",
    "yw_other": "sender",
    "cw_own": "receiver",
    "cw_other": "receiver",
    "lead_own": "receiver",
}


# --- what they get ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    problem: str | None = None  # the problem ``type`` after ``urn:referrals:problem:``

    def __str__(self) -> str:
        return f"{self.status} {self.problem or ''}".strip()


OK = Expect(200)
CREATED = Expect(201)
DELETED = Expect(204)
# Outside the caller's scope: the referral's existence is not revealed (README: Roles).
HIDDEN = Expect(404, "not-found")
# The token lacks the scope of the endpoint group (auditors and admins on case endpoints).
SCOPE = Expect(403, "insufficient-scope")
# The caller's role (or a case role without a unit) may never do this.
ROLE = Expect(403, "forbidden")
# The caller sees the referral, but their side (sender/receiver) may not take this action.
SIDE = Expect(403, "action-not-allowed")
# The caller's side may do this, but not in the referral's current state.
STATE = Expect(409, "conflict")


def row(
    *,
    yw_own: Expect,
    yw_other: Expect,
    cw_own: Expect,
    cw_other: Expect,
    auditor: Expect,
    admin: Expect,
    yw_nounit: Expect,
    cw_nounit: Expect,
    privacy: Expect,
    analyst: Expect,
    lead_own: Expect,
) -> dict[str, Expect]:
    """One row: every caller must be stated, none has a default."""
    return {
        "yw_own": yw_own,
        "yw_other": yw_other,
        "cw_own": cw_own,
        "cw_other": cw_other,
        "auditor": auditor,
        "admin": admin,
        "yw_nounit": yw_nounit,
        "cw_nounit": cw_nounit,
        "privacy": privacy,
        "analyst": analyst,
        "lead_own": lead_own,
    }


# Every referral below is sent by ungdomsjouren about a young person living in norrmalm, so
# it is routed to norrmalm on submit.  "redirected" was requested to norrmalm and then
# redirected by norrmalm to sodermalm: norrmalm has lost access, sodermalm has gained it.
# "listing" is a draft, a requested and a redirected referral together.  "rule" is an
# extra routing rule (EXTRA_RULE, or what an earlier cell of the row made of it) added by
# an admin; "dead" is the webhook delivery of a
# submitted referral to norrmalm whose every attempt failed.
#
# Cells that differ from the service's behaviour when this was written are marked
# "DESIGN:"; the final report of the matrix author lists them.
MATRIX: dict[tuple[str, str, str], dict[str, Expect]] = {
    # -- the collection ------------------------------------------------------------------
    ("GET", REFERRALS, "listing"): row(
        yw_own=OK, yw_other=OK, cw_own=OK, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", REFERRALS, "new"): row(
        yw_own=CREATED, yw_other=CREATED, cw_own=ROLE, cw_other=ROLE,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=ROLE,
    ),
    # -- one referral --------------------------------------------------------------------
    ("GET", REFERRAL, "draft"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", REFERRAL, "requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("GET", REFERRAL, "redirected"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", REFERRAL, "completed"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("PATCH", REFERRAL, "draft"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    # DESIGN: only youth workers edit; the receiver may never, whatever the state (403).
    ("PATCH", REFERRAL, "requested"): row(
        yw_own=STATE, yw_other=HIDDEN, cw_own=SIDE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SIDE,
    ),
    ("DELETE", REFERRAL, "draft"): row(
        yw_own=DELETED, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    # DESIGN: deleting is the sender's; the receiver may never (403).
    ("DELETE", REFERRAL, "requested"): row(
        yw_own=STATE, yw_other=HIDDEN, cw_own=SIDE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SIDE,
    ),
    # -- actions (README: Referral states) ------------------------------------------------
    ("POST", f"{REFERRAL}/submit", "draft"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("POST", f"{REFERRAL}/accept", "requested"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/accept", "redirected"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("POST", f"{REFERRAL}/decline", "requested"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/redirect", "requested"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    # Before acceptance only the sender withdraws; after it, only the receiving unit.
    ("POST", f"{REFERRAL}/cancel", "requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=SIDE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SIDE,
    ),
    ("POST", f"{REFERRAL}/cancel", "accepted"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/start", "accepted"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/hold", "in_progress"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/resume", "on_hold"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/complete", "in_progress"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/fail", "in_progress"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/mark-error", "requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/mark-error", "in_progress"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    # Two-phase disclosure: the receiving unit reveals the identity before deciding.
    ("POST", f"{REFERRAL}/reveal", "requested"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/reveal", "accepted"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=STATE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=STATE,
    ),
    # Consent withdrawn: the sender's, on a submitted referral resting on consent.
    ("POST", f"{REFERRAL}/withdraw-consent", "consent_requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=SIDE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SIDE,
    ),
    ("POST", f"{REFERRAL}/withdraw-consent", "requested"): row(
        yw_own=STATE, yw_other=HIDDEN, cw_own=SIDE, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SIDE,
    ),
    # Caseloads that move: only the receiving unit assigns (its own open referrals).
    ("POST", f"{REFERRAL}/assign", "accepted"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("POST", f"{REFERRAL}/assign", "redirected"): row(
        yw_own=SIDE, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=STATE,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    # Search answers only with what the caller may see: others get an empty list, not 404.
    ("POST", SEARCH, "requested"): row(
        yw_own=OK, yw_other=OK, cw_own=OK, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    # -- the audit trail: auditors only (scope audit:read), never case content ------------
    ("GET", f"{REFERRAL}/access-log", "requested"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", AUDIT_EVENTS, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", AUDIT_VERIFY, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", AUDIT_CHECKPOINTS, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    # -- timeline and notes --------------------------------------------------------------
    ("GET", f"{REFERRAL}/events", "draft"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", f"{REFERRAL}/events", "requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("GET", f"{REFERRAL}/events", "redirected"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", f"{REFERRAL}/notes", "draft"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", f"{REFERRAL}/notes", "requested"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=OK, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=OK,
    ),
    ("GET", f"{REFERRAL}/notes", "redirected"): row(
        yw_own=OK, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=OK,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("POST", f"{REFERRAL}/notes", "draft"): row(
        yw_own=CREATED, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("POST", f"{REFERRAL}/notes", "requested"): row(
        yw_own=CREATED, yw_other=HIDDEN, cw_own=CREATED, cw_other=HIDDEN,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=CREATED,
    ),
    ("POST", f"{REFERRAL}/notes", "redirected"): row(
        yw_own=CREATED, yw_other=HIDDEN, cw_own=HIDDEN, cw_other=CREATED,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    # -- units: managed by admins (README: Roles); the directory itself is readable by every
    # role, since it is no case content and caseworkers need unit ids to redirect.
    # Webhook URLs are shown to admins only.
    ("GET", UNITS, "unit"): row(
        yw_own=OK, yw_other=OK, cw_own=OK, cw_other=OK,
        auditor=OK, admin=OK, yw_nounit=OK, cw_nounit=OK,
        privacy=OK, analyst=OK, lead_own=OK,
    ),
    ("POST", UNITS, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=CREATED, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    # Reassigning a caseload is a unit lead's (tests/api/test_caseloads.py has the leads).
    ("POST", f"{UNIT}/reassign", "unit"): row(
        yw_own=ROLE, yw_other=ROLE, cw_own=ROLE, cw_other=ROLE,
        auditor=SCOPE, admin=SCOPE, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=HIDDEN,
    ),
    ("GET", UNIT, "unit"): row(
        yw_own=OK, yw_other=OK, cw_own=OK, cw_other=OK,
        auditor=OK, admin=OK, yw_nounit=OK, cw_nounit=OK,
        privacy=OK, analyst=OK, lead_own=OK,
    ),
    ("PUT", UNIT, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    # -- routing rules and webhook deliveries: operator business, scope admin (README: Roles) -
    ("GET", ROUTING_RULES, "rule"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("POST", ROUTING_RULES, "rule"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=CREATED, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", ROUTING_VERSIONS, "rule"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("PUT", ROUTING_RULE, "rule"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("DELETE", ROUTING_RULE, "rule"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=DELETED, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    # The preview: admins check their rules, a referring unit's youth worker asks where a
    # referral would go.  Caseworkers hold referrals:write too, but never open referrals.
    ("POST", PREVIEW, "rule"): row(
        yw_own=OK, yw_other=OK, cw_own=ROLE, cw_other=ROLE,
        auditor=SCOPE, admin=OK, yw_nounit=ROLE, cw_nounit=ROLE,
        privacy=SCOPE, analyst=SCOPE, lead_own=ROLE,
    ),
    ("GET", DELIVERIES, "dead"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("POST", REPLAY, "dead"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=OK, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=SCOPE, lead_own=SCOPE,
    ),
    # -- retention and legal holds: privacy officers (scope privacy) and auditors
    # (audit:read); ids, statuses and dates, never case content (README: API) ----------------
    ("PUT", LEGAL_HOLD, "completed"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=OK, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("DELETE", LEGAL_HOLD, "held"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=DELETED, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=DELETED, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", RETENTION, "unit"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=OK, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=OK, analyst=SCOPE, lead_own=SCOPE,
    ),
    # -- the privacy lifecycle: the privacy officer's export (scope privacy) and the
    # analysts' suppressed statistics (scope statistics:read); no one else (README: Roles).
    ("POST", SUBJECT_ACCESS, "requested"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=OK, analyst=SCOPE, lead_own=SCOPE,
    ),
    ("GET", STATISTICS, "requested"): row(
        yw_own=SCOPE, yw_other=SCOPE, cw_own=SCOPE, cw_other=SCOPE,
        auditor=SCOPE, admin=SCOPE, yw_nounit=SCOPE, cw_nounit=SCOPE,
        privacy=SCOPE, analyst=OK, lead_own=SCOPE,
    ),
}  # fmt: skip

# Who sees which of the "listing" referrals in GET /referrals (inbox or outbox).
LISTED: dict[str, set[str]] = {
    "yw_own": {"draft", "requested", "redirected"},
    "yw_other": set(),
    "cw_own": {"requested"},
    "cw_other": {"redirected"},
    "lead_own": {"requested"},  # the unit lead sees its unit's inbox, as cw_own
}

# --- the requests ----------------------------------------------------------------------

SUBJECT_NAME = "Testa Testsson"
NARRATIVE = "Träffad vid Plattan en fredagskväll, berättar om bråk hemma."
PATCHED_NARRATIVE = "Träffad igen på lördagen; vill ha kontakt med socialtjänsten."
NOTE_TEXT = "Ringde skolan, ingen svarade."


# Made up, valid by checksum, and matching the birth date below.
PERSONAL_NUMBER = "201005172380"


CONSENT = {"given_by": "guardian", "given_at": "2026-11-20T10:00:00+01:00"}


def referral_body() -> dict[str, Any]:
    return {
        "subject": {
            "name": SUBJECT_NAME,
            "personal_number": PERSONAL_NUMBER,
            "birth_date": "2010-05-17",
            "district": "norrmalm",
        },
        "categories": ["family_conflict", "school_absence"],
        "priority": "normal",
        "legal_basis": "duty_to_report",
        "place_met": "Sergels torg",
        "narrative": NARRATIVE,
    }


ACTION_BODIES: dict[str, dict[str, Any]] = {
    "submit": {},
    "accept": {},
    # The receiving caseworker takes it (dev tokens' subject: role@unit).
    "assign": {"assignee": "dev-caseworker@norrmalm"},
    "decline": {"reason_code": "no_capacity", "reason_text": "Fullt just nu."},
    "redirect": {"unit": "kungsholmen", "reason_code": "wrong_district"},
    "cancel": {"reason_code": "no_longer_needed"},
    "start": {},
    "hold": {"reason_code": "awaiting_information"},
    "resume": {},
    "complete": {"outcome_code": "support_started"},
    "fail": {"reason_code": "subject_unreachable"},
    "mark-error": {"reason_code": "data_entry_error"},
    "reveal": {"reason_code": "known_to_unit"},
    "withdraw-consent": {"reason_code": "withdrawn_by_subject"},
}
# (status after the action, receiving unit after it; None: unchanged)
ACTION_RESULTS: dict[str, tuple[str, str | None]] = {
    "submit": ("requested", "norrmalm"),
    "accept": ("accepted", None),
    "assign": ("accepted", None),
    "decline": ("rejected", None),
    "redirect": ("requested", "kungsholmen"),
    "cancel": ("cancelled", None),
    "start": ("in_progress", None),
    "hold": ("on_hold", None),
    "resume": ("in_progress", None),
    "complete": ("completed", None),
    "fail": ("failed", None),
    "mark-error": ("entered_in_error", None),
    "reveal": ("requested", None),
    "withdraw-consent": ("cancelled", None),
}
# The webhook event each transition announces (README: Routing).
ACTION_EVENTS: dict[str, str] = {
    "submit": "referral.submitted",
    "accept": "referral.accepted",
    "decline": "referral.declined",
    "redirect": "referral.redirected",
    "cancel": "referral.cancelled",
    "start": "referral.started",
    "hold": "referral.held",
    "resume": "referral.resumed",
    "complete": "referral.completed",
    "fail": "referral.failed",
    "mark-error": "referral.entered_in_error",
    "withdraw-consent": "referral.consent_withdrawn",
}
HOLD_BODY = {"reason_code": "complaint"}
NEW_UNIT = {"id": "mottagning-syd", "name": "Mottagning Syd", "kind": "receiver"}
UNIT_REPLACEMENT = {"name": "Kungsholmen nya", "kind": "receiver", "districts": ["kungsholmen"]}
# The seeded rules sit at positions 10, 20, 30 (a district each) and 1000 (the catch-all).
# The "rule" target adds EXTRA_RULE; NEW_RULE and RULE_REPLACEMENT are valid next to both.
EXTRA_RULE = {"position": 50, "unit": "kungsholmen", "match": {"districts": ["ostermalm"]}}
NEW_RULE = {"position": 40, "unit": "sodermalm", "match": {"districts": ["farsta"], "max_age": 17}}
RULE_REPLACEMENT = {
    "position": 55,
    "unit": "norrmalm",
    "match": {"districts": ["ostermalm"], "priorities": ["acute"]},
}


def preview_body() -> dict[str, Any]:
    """A whole referral body (personal data and all) of a young person in ostermalm."""
    body = referral_body()
    body["subject"] = {**body["subject"], "district": "ostermalm"}
    return body


# How each target state is reached from a fresh draft: (action, who, body).
STEPS: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {
    "draft": (),
    "requested": (("submit", "yw_own", {}),),
}
STEPS["accepted"] = (*STEPS["requested"], ("accept", "cw_own", {}))
# The same, resting on consent (``make_referral`` gives it the consent basis).
STEPS["consent_requested"] = STEPS["requested"]
STEPS["in_progress"] = (*STEPS["accepted"], ("start", "cw_own", {}))
STEPS["on_hold"] = (
    *STEPS["in_progress"],
    ("hold", "cw_own", {"reason_code": "awaiting_information"}),
)
STEPS["completed"] = (
    *STEPS["in_progress"],
    ("complete", "cw_own", {"outcome_code": "no_action_needed"}),
)
STEPS["redirected"] = (
    *STEPS["requested"],
    ("redirect", "cw_own", {"unit": "sodermalm", "reason_code": "wrong_district"}),
)


# --- helpers ---------------------------------------------------------------------------


# A routing rule as (id, position, unit, match as canonical JSON).
RuleRow = tuple[str, int, str, str]


def rule_row(rule_id: str, rule: Mapping[str, Any]) -> RuleRow:
    return (rule_id, rule["position"], rule["unit"], json.dumps(rule["match"], sort_keys=True))


def by_position(rules: Any) -> tuple[RuleRow, ...]:
    return tuple(sorted(rules, key=lambda r: r[1]))


@dataclass(frozen=True)
class Snapshot:
    referrals: dict[uuid.UUID, tuple[str, int, str, str | None]]
    notes: int
    units: dict[str, tuple[str, str, tuple[str, ...], str | None]]
    # rule-set version -> its rules in the order they are tried
    rulesets: dict[int, tuple[RuleRow, ...]]
    # webhook delivery -> (event type, unit, state, attempts)
    outbox: dict[uuid.UUID, tuple[str, str, str, int]]
    # legal hold -> (referral, reason code, released)
    holds: dict[uuid.UUID, tuple[uuid.UUID, str, bool]]


def snapshot(database: Database) -> Snapshot:
    with database.sessions() as session:
        referrals = {
            r.id: (r.status, r.version, r.sending_unit_id, r.receiving_unit_id)
            for r in session.scalars(select(Referral))
        }
        notes = session.scalar(select(func.count()).select_from(Note)) or 0
        units = {
            u.id: (u.name, u.kind, tuple(u.districts), u.webhook_url)
            for u in session.scalars(select(Unit))
        }
        rulesets = {
            s.version: by_position(rule_row(str(r["id"]), r) for r in s.rules)
            for s in session.scalars(select(RoutingRuleSet))
        }
        outbox = {
            m.id: (m.event_type, m.unit_id, m.state, m.attempts)
            for m in session.scalars(select(OutboxMessage))
        }
        holds = {
            h.id: (h.referral_id, h.reason_code, h.released_at is not None)
            for h in session.scalars(select(LegalHold))
        }
    return Snapshot(referrals, notes, units, rulesets, outbox, holds)


class Callers:
    """Bearer headers for each caller, minted on first use."""

    def __init__(self, dev_token: Callable[..., str]) -> None:
        self._dev_token = dev_token
        self._headers: dict[str, dict[str, str]] = {}

    def __call__(self, caller: str, **extra: str) -> dict[str, str]:
        if caller not in self._headers:
            role, unit = CALLERS[caller]
            self._headers[caller] = {"Authorization": f"Bearer {self._dev_token(role, unit)}"}
        return {**self._headers[caller], **extra}


@pytest.fixture
def callers(client: FlaskClient, dev_token: Callable[..., str]) -> Callers:
    callers = Callers(dev_token)
    # A second referring unit, registered the way an operator would.
    created = client.post(
        f"{API}/units",
        json={"id": "faltgruppen", "name": "Fältgruppen City", "kind": "referrer"},
        headers=callers("admin"),
    )
    assert created.status_code == 201, created.json
    return callers


def make_referral(client: FlaskClient, callers: Callers, target: str) -> tuple[str, str]:
    """A fresh referral in state ``target``; returns its id and current ETag."""
    body = referral_body()
    if target.startswith("consent_"):
        body |= {"legal_basis": "consent", "consent": CONSENT}
    created = client.post(f"{API}/referrals", json=body, headers=callers("yw_own"))
    assert created.status_code == 201, created.json
    rid, etag = created.json["id"], created.headers["ETag"]
    for action, who, body in STEPS[target]:
        done = client.post(f"{API}/referrals/{rid}/{action}", json=body, headers=callers(who))
        assert done.status_code == 200, done.json
        etag = done.headers["ETag"]
    return rid, etag


def extra_rule(client: FlaskClient, database: Database, callers: Callers) -> str:
    """The id of the current set's ostermalm rule: EXTRA_RULE, added by an admin (a new
    rule-set version) unless an earlier cell of the row left it, or its replacement."""
    with database.sessions() as session:
        latest = session.scalars(
            select(RoutingRuleSet).order_by(RoutingRuleSet.version.desc()).limit(1)
        ).one()
        for rule in latest.rules:
            match: Any = rule["match"]
            if match.get("districts") == EXTRA_RULE["match"]["districts"]:
                return str(rule["id"])
    added = client.post(f"{API}/routing-rules", json=EXTRA_RULE, headers=callers("admin"))
    assert added.status_code == 201, added.json
    return str(added.json["id"])


def make_dead_delivery(client: FlaskClient, database: Database, callers: Callers) -> str:
    """A submitted referral's webhook to norrmalm, every attempt of which failed.

    (Test setup: the worker's failures are stood in for by setting the row's state.)"""
    rid, _ = make_referral(client, callers, "requested")
    with database.sessions() as session:
        # The sender submitted it, so only the receiving unit is told.
        (message,) = session.scalars(
            select(OutboxMessage).where(OutboxMessage.referral_id == uuid.UUID(rid))
        )
        assert (message.unit_id, message.state) == ("norrmalm", "pending")
        message.state = "dead"
        message.attempts = 8
        message.last_attempt_at = message.created_at
        message.last_error = "HTTP 500"
        delivery_id = str(message.id)
        session.commit()
    return delivery_id


def prepare(
    client: FlaskClient, database: Database, callers: Callers, target: str
) -> tuple[str | None, str | None]:
    """What a row's target needs: the id of the object made for it (a referral, a
    routing rule or a delivery), and the referral's ETag."""
    if target in STEPS:
        return make_referral(client, callers, target)
    if target == "rule":
        return extra_rule(client, database, callers), None
    if target == "dead":
        return make_dead_delivery(client, database, callers), None
    if target == "held":
        rid, etag = make_referral(client, callers, "completed")
        held = client.put(
            f"{API}/referrals/{rid}/legal-hold", json=HOLD_BODY, headers=callers("privacy")
        )
        assert held.status_code == 200, held.json
        return rid, etag
    return None, None


def assert_problem(response: TestResponse, expect: Expect) -> None:
    assert response.status_code == expect.status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["type"] == PROBLEM + str(expect.problem)
    assert body["title"] == HTTPStatus(expect.status).phrase
    assert body["status"] == expect.status
    if expect is SCOPE:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # A refusal never carries case content.
    text = response.get_data(as_text=True)
    assert SUBJECT_NAME not in text
    assert NARRATIVE not in text


def request_for(method: str, path: str, rid: str | None, etag: str | None) -> dict[str, Any]:
    """The one valid request for an endpoint: URL, body and headers.

    ``rid`` is the id of the object the path names: a referral, a rule or a delivery."""
    url = API + path.replace("<slug:unit_id>", "kungsholmen")
    for placeholder in OBJECT_PLACEHOLDERS:
        url = url.replace(placeholder, str(rid))
    if (method, path) == ("GET", DELIVERIES):
        url += "?state=dead"  # the dead-letter queue
    if (method, path) == ("GET", RETENTION):
        url += "?days=30"
    headers: dict[str, str] = {}
    if etag is not None and path.startswith(REFERRAL) and method != "GET":
        headers["If-Match"] = etag
    body: dict[str, Any] | None = None
    if (method, path) == ("POST", REFERRALS):
        body = referral_body()
    elif (method, path) == ("PATCH", REFERRAL):
        body = {"narrative": PATCHED_NARRATIVE}
    elif (method, path) == ("POST", f"{REFERRAL}/notes"):
        body = {"text": NOTE_TEXT, "visibility": "shared"}
    elif (method, path) == ("POST", SEARCH):
        body = {"personal_number": PERSONAL_NUMBER}
    elif (method, path) == ("POST", UNITS):
        body = NEW_UNIT
    elif (method, path) == ("PUT", UNIT):
        body = UNIT_REPLACEMENT
    elif (method, path) == ("POST", f"{UNIT}/reassign"):
        body = {
            "from": "dev-caseworker@kungsholmen",
            "to": "dev-unit_lead@kungsholmen",
            "dry_run": True,
        }
    elif (method, path) == ("POST", ROUTING_RULES):
        body = NEW_RULE
    elif (method, path) == ("PUT", ROUTING_RULE):
        body = RULE_REPLACEMENT
    elif (method, path) == ("POST", PREVIEW):
        body = preview_body()
    elif (method, path) == ("PUT", LEGAL_HOLD):
        body = HOLD_BODY
    elif (method, path) == ("POST", SUBJECT_ACCESS):
        body = {"personal_number": PERSONAL_NUMBER}
    elif method == "POST" and path.startswith(REFERRAL + "/"):
        body = ACTION_BODIES[path.rsplit("/", 1)[1]]
    return {"method": method, "path": url, "json": body, "headers": headers}


def short(path: str) -> str:
    return (
        path.replace("<uuid:referral_id>", "{id}")
        .replace("<slug:unit_id>", "{unit}")
        .replace("<uuid:rule_id>", "{rule}")
        .replace("<uuid:delivery_id>", "{delivery}")
    )


def matrix_rows() -> list[Any]:
    return [
        pytest.param(method, path, target, expectations,
                     id=f"{method} {short(path)} ({target})")
        for (method, path, target), expectations in MATRIX.items()
    ]  # fmt: skip


# --- the tests -------------------------------------------------------------------------


def test_every_endpoint_has_a_row_and_every_row_an_endpoint(app: Flask) -> None:
    served = {
        (method, rule.rule.removeprefix(API))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API + "/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    listed = {(method, path) for method, path, _target in MATRIX}
    assert {
        "endpoints without a row in MATRIX": sorted(served - listed),
        "rows in MATRIX for endpoints that do not exist": sorted(listed - served),
    } == {
        "endpoints without a row in MATRIX": [],
        "rows in MATRIX for endpoints that do not exist": [],
    }
    actions = {p for m, p in served if m == "POST" and p.startswith(REFERRAL + "/")}
    assert actions == {f"{REFERRAL}/{a}" for a in ACTION_BODIES} | {f"{REFERRAL}/notes"}


def test_every_row_states_every_caller() -> None:
    for key, expectations in MATRIX.items():
        assert list(expectations) == list(CALLERS), key
    for key in MATRIX:
        assert key[2] in {*STEPS, "listing", "new", "unit", "rule", "dead", "held"}, key


@pytest.mark.parametrize(("method", "path", "target", "expectations"), matrix_rows())
def test_matrix(
    client: FlaskClient,
    database: Database,
    callers: Callers,
    subtests: pytest.Subtests,
    method: str,
    path: str,
    target: str,
    expectations: dict[str, Expect],
) -> None:
    """One row of MATRIX; each caller is a subtest with a fresh referral of its own.

    (One test per row rather than per cell: building the app per test costs more than
    all the requests of a row together.)
    """
    listing: dict[str, str] = {}
    if target == "listing":
        # Read-only, so one set of referrals serves every caller.
        listing = {t: make_referral(client, callers, t)[0] for t in sorted(LISTED["yw_own"])}
    for caller, expect in expectations.items():
        with subtests.test(msg=f"{caller} expects {expect}"):
            check_cell(client, database, callers, method, path, target, caller, expect, listing)


def check_cell(
    client: FlaskClient,
    database: Database,
    callers: Callers,
    method: str,
    path: str,
    target: str,
    caller: str,
    expect: Expect,
    listing: dict[str, str],
) -> None:
    rid, etag = prepare(client, database, callers, target)
    before = snapshot(database)

    request = request_for(method, path, rid, etag)
    response = client.open(
        request["path"],
        method=method,
        json=request["json"],
        headers=callers(caller, **request["headers"]),
    )
    after = snapshot(database)

    if expect.status >= 400:
        assert_problem(response, expect)
        assert after == before, "a refused request changed the database"
        named = any(placeholder in path for placeholder in OBJECT_PLACEHOLDERS)
        if rid is not None and named and expect in (HIDDEN, SCOPE, ROLE):
            # Indistinguishable from a referral (rule, delivery) that does not exist.
            ghost = request_for(method, path, str(uuid.uuid4()), etag)
            other = client.open(
                ghost["path"],
                method=method,
                json=ghost["json"],
                headers=callers(caller, **ghost["headers"]),
            )
            assert (other.status_code, other.get_json()) == (
                response.status_code,
                response.get_json(),
            )
        return

    assert response.status_code == expect.status, response.get_data(as_text=True)
    check_allowed(method, path, target, caller, rid, listing, response, before, after)


def check_allowed(
    method: str,
    path: str,
    target: str,
    caller: str,
    rid: str | None,
    listing: dict[str, str],
    response: TestResponse,
    before: Snapshot,
    after: Snapshot,
) -> None:
    """An allowed request did exactly what it should, and nothing else."""
    body = response.get_json(silent=True)
    key = uuid.UUID(rid) if rid and target != "rule" else None  # a referral or a delivery
    if method == "GET":
        assert after == before, "a read changed the database"
    if (method, path) == ("GET", REFERRALS):
        seen = {item["id"] for item in body["items"]}
        assert seen == {listing[t] for t in LISTED[caller]}
    elif (method, path) == ("POST", REFERRALS):
        (new,) = set(after.referrals) - set(before.referrals)
        unit = CALLERS[caller][1]
        assert after.referrals[new] == ("draft", 1, unit, None)
        assert (body["id"], body["status"], body["sending_unit"]) == (str(new), "draft", unit)
    elif (method, path) == ("POST", SEARCH):
        assert after == before, "a search changed the database"
        # Earlier cells made referrals for the same person; all of them are ungdomsjouren's,
        # routed to norrmalm, so only those two units may find any.
        # The receiving unit finds only what was disclosed to it (two-phase disclosure):
        # a requested referral is not, until accepted or revealed.
        found = {item["id"] for item in body["items"]}
        if caller == "yw_own":
            assert rid in found
        else:
            assert rid not in found
        if caller not in {"yw_own", "cw_own"}:
            assert found == set()
    elif (method, path) == ("GET", f"{REFERRAL}/access-log"):
        assert body["items"]
        assert {item["target_id"] for item in body["items"]} == {rid}
        text = json.dumps(body, ensure_ascii=False)  # identifiers and codes, no case content
        assert SUBJECT_NAME not in text
        assert NARRATIVE not in text
    elif (method, path) == ("GET", AUDIT_EVENTS):
        assert body["items"]
        assert {"actor", "action", "outcome", "http_status"} <= set(body["items"][0])
    elif (method, path) == ("GET", AUDIT_VERIFY):
        assert body["status"] == "ok"
    elif (method, path) == ("GET", AUDIT_CHECKPOINTS):
        assert body == {"items": []}
    elif (method, path) == ("GET", REFERRAL):
        assert body["id"] == rid
        assert body["status"] == before.referrals[key][0]
        # Two-phase disclosure: the receiving unit sees no identity before it accepts.
        undisclosed = SIDE_OF[caller] == "receiver" and body["status"] == "requested"
        assert body["disclosure"] == ("decision" if undisclosed else "full")
        assert body["subject"].get("name") == (None if undisclosed else SUBJECT_NAME)
        assert response.headers["ETag"] == f'"v{before.referrals[key][1]}"'
    elif (method, path) == ("PATCH", REFERRAL):
        status, version, sender, receiver = before.referrals[key]
        assert after.referrals == {**before.referrals, key: (status, version + 1, sender, receiver)}
        assert body["narrative"] == PATCHED_NARRATIVE
    elif (method, path) == ("DELETE", REFERRAL):
        assert response.get_data() == b""
        assert after.referrals == {k: v for k, v in before.referrals.items() if k != key}
    elif (method, path) == ("GET", f"{REFERRAL}/events"):
        assert body["items"][0]["action"] == "create"
        assert body["items"][-1]["to_status"] == before.referrals[key][0]
    elif (method, path) == ("GET", f"{REFERRAL}/notes"):
        assert body == {"items": []}
    elif (method, path) == ("POST", f"{REFERRAL}/notes"):
        assert after.notes == before.notes + 1
        assert (body["text"], body["author_side"]) == (NOTE_TEXT, SIDE_OF[caller])
        assert body["author_unit"] == CALLERS[caller][1]
    elif (method, path) == ("PUT", LEGAL_HOLD):
        assert key is not None
        (new,) = set(after.holds) - set(before.holds)
        assert after.holds == {**before.holds, new: (key, "complaint", False)}
        assert (body["referral_id"], body["status"], body["reason_code"]) == (
            rid, "completed", "complaint",
        )  # fmt: skip
        assert after.referrals == before.referrals, "a hold changes no referral"
    elif (method, path) == ("DELETE", LEGAL_HOLD):
        assert key is not None
        assert response.get_data() == b""
        (held,) = [k for k, (r, _c, released) in before.holds.items() if r == key and not released]
        assert after.holds == {**before.holds, held: (key, "complaint", True)}
        assert after.referrals == before.referrals
    elif (method, path) == ("GET", RETENTION):
        assert body["days"] == 30
        assert {"due", "held", "periods", "due_count", "held_count"} <= set(body)
        text = json.dumps(body, ensure_ascii=False)  # identifiers and codes, no case content
        assert SUBJECT_NAME not in text
        assert NARRATIVE not in text
        assert PERSONAL_NUMBER not in text
    elif path.startswith(REFERRAL + "/"):
        action = path.rsplit("/", 1)[1]
        status, unit = ACTION_RESULTS[action]
        _, version, sender, receiver = before.referrals[key]
        expected = (status, version + 1, sender, unit or receiver)
        assert after.referrals == {**before.referrals, key: expected}
        assert (body["status"], body["receiving_unit"]) == (status, unit or receiver)
    elif (method, path) == ("GET", UNITS):
        assert {u["id"] for u in body["items"]} == set(before.units)
    elif (method, path) == ("POST", UNITS):
        assert after.units == {
            **before.units,
            NEW_UNIT["id"]: (NEW_UNIT["name"], "receiver", (), None),
        }
    elif (method, path) == ("GET", UNIT):
        assert (body["id"], body["name"]) == ("kungsholmen", before.units["kungsholmen"][0])
    elif (method, path) == ("PUT", UNIT):
        assert after.units == {
            **before.units,
            "kungsholmen": ("Kungsholmen nya", "receiver", ("kungsholmen",), None),
        }
    elif (method, path) == ("POST", SUBJECT_ACCESS):
        assert after == before, "an export changed the database"
        # Every referral of the matrix is about the same person: this one among them.
        exported = {item["referral"]["id"]: item["referral"] for item in body["referrals"]}
        assert exported[rid]["subject"]["name"] == SUBJECT_NAME
        assert exported[rid]["narrative"] == NARRATIVE
    elif (method, path) == ("GET", STATISTICS):
        assert after == before, "statistics changed the database"
        # One referral per earlier cell of the row, all submitted this month: enough.
        submitted = sum(1 for status, *_ in before.referrals.values() if status != "draft")
        assert submitted >= 5
        assert body["total"] == submitted
        text = response.get_data(as_text=True)
        assert [v for v in (str(rid), SUBJECT_NAME, NARRATIVE, PERSONAL_NUMBER) if v in text] == []
    elif path.startswith(ROUTING_RULES) or path == PREVIEW:
        check_routing(method, path, rid, response, before, after)
    elif (method, path) == ("GET", DELIVERIES):
        dead = {k for k, (_e, _u, state, _a) in before.outbox.items() if state == "dead"}
        assert {uuid.UUID(item["id"]) for item in body["items"]} == dead
        (item,) = [item for item in body["items"] if item["id"] == rid]
        assert key is not None
        event_type, unit, state, attempts = before.outbox[key]
        assert (item["webhook_id"], item["event_type"], item["unit"]) == (
            f"msg_{key.hex}", event_type, unit,
        )  # fmt: skip
        assert (item["state"], item["attempts"]) == (state, attempts) == ("dead", 8)
        assert item["last_error"] == "HTTP 500"
        assert body["next_cursor"] is None
    elif (method, path) == ("POST", REPLAY):
        assert key is not None
        event_type, unit, _state, _attempts = before.outbox[key]
        assert after.outbox == {**before.outbox, key: (event_type, unit, "pending", 0)}
        # The same message again: receivers deduplicate on its unchanged webhook-id.
        assert (body["id"], body["webhook_id"], body["state"], body["attempts"]) == (
            rid, f"msg_{key.hex}", "pending", 0,
        )  # fmt: skip
    else:  # pragma: no cover - a row without a check is a mistake in this module
        pytest.fail(f"no check for an allowed {method} {path}")
    if method != "GET" and not path.startswith(UNITS):
        # Case writes touch neither the unit directory nor, except notes, the notes.
        assert after.units == before.units
        if not path.endswith("/notes"):
            assert after.notes == before.notes
    if method == "GET" or not path.startswith(ROUTING_RULES):
        # Only a change of the rules makes a rule-set version.
        assert after.rulesets == before.rulesets
    transition = path.rsplit("/", 1)[1] if path.startswith(REFERRAL + "/") else None
    if transition in ACTION_EVENTS:
        # One pending webhook per unit on the referral, other than the caller's (README).
        assert key is not None
        _status, _version, sender, receiver = after.referrals[key]
        recipients = {sender, receiver} - {CALLERS[caller][1]}
        added = [v for k, v in after.outbox.items() if k not in before.outbox]
        assert sorted(added) == sorted(
            (ACTION_EVENTS[transition], unit, "pending", 0) for unit in recipients
        )
        assert {k: after.outbox[k] for k in before.outbox} == before.outbox
    elif (method, path) != ("POST", REPLAY):
        assert after.outbox == before.outbox, "only transitions and a replay touch the outbox"


def check_routing(
    method: str,
    path: str,
    rid: str | None,
    response: TestResponse,
    before: Snapshot,
    after: Snapshot,
) -> None:
    """An allowed routing request; ``rid`` is EXTRA_RULE's id."""
    body = response.get_json(silent=True)
    version = max(before.rulesets)
    current = before.rulesets[version]
    if (method, path) == ("GET", ROUTING_RULES):
        assert body["version"] == version
        assert [rule_row(item["id"], item) for item in body["items"]] == list(current)
        assert {item["ruleset_version"] for item in body["items"]} == {version}
        assert rid in {item["id"] for item in body["items"]}
    elif (method, path) == ("GET", ROUTING_VERSIONS):
        assert [(item["version"], item["rules"]) for item in body["items"]] == [
            (v, len(before.rulesets[v])) for v in sorted(before.rulesets, reverse=True)
        ]
    elif (method, path) == ("POST", ROUTING_RULES):
        new_id = body["id"]
        assert new_id not in {r[0] for rules in before.rulesets.values() for r in rules}
        assert body == {**NEW_RULE, "id": new_id, "ruleset_version": version + 1}
        assert after.rulesets == {
            **before.rulesets,
            version + 1: by_position([*current, rule_row(new_id, NEW_RULE)]),
        }
    elif (method, path) == ("PUT", ROUTING_RULE):
        assert rid is not None
        assert body == {**RULE_REPLACEMENT, "id": rid, "ruleset_version": version + 1}
        replaced = by_position(
            rule_row(rid, RULE_REPLACEMENT) if r[0] == rid else r for r in current
        )
        assert after.rulesets == {**before.rulesets, version + 1: replaced}
    elif (method, path) == ("DELETE", ROUTING_RULE):
        assert response.get_data() == b""
        assert after.rulesets == {
            **before.rulesets,
            version + 1: tuple(r for r in current if r[0] != rid),
        }
    elif (method, path) == ("POST", PREVIEW):
        assert after == before, "a preview stored something"
        # ostermalm: none of the seeded district rules, so EXTRA_RULE.
        assert (rid, EXTRA_RULE["position"], EXTRA_RULE["unit"]) in {r[:3] for r in current}
        assert (body["unit"], body["rule_id"], body["ruleset_version"]) == (
            EXTRA_RULE["unit"], rid, version,
        )  # fmt: skip
        tried = [r[0] for r in current]
        tried = tried[: tried.index(str(rid)) + 1]
        assert [(e["rule_id"], e["matched"]) for e in body["explanation"]] == [
            (rule_id, rule_id == rid) for rule_id in tried
        ]
        text = response.get_data(as_text=True)
        assert [
            v for v in (SUBJECT_NAME, NARRATIVE, PERSONAL_NUMBER, "2010-05-17") if v in text
        ] == []
    else:  # pragma: no cover - a row without a check is a mistake in this module
        pytest.fail(f"no check for an allowed {method} {path}")


# --- notes: each side's internal notes stay with it (README: Roles) --------------------------

NOTES = {
    ("yw_own", "internal"): "Avsändarens egen anteckning: pojken verkade rädd.",
    ("yw_own", "shared"): "Till mottagaren: han vill bli kontaktad via mamma.",
    ("cw_own", "internal"): "Mottagarens egen anteckning: tidigare aktualiserad 2024.",
    ("cw_own", "shared"): "Till avsändaren: vi har tagit emot och bokat möte.",
}


def add_notes(client: FlaskClient, callers: Callers, rid: str) -> None:
    for (who, visibility), text in NOTES.items():
        added = client.post(
            f"{API}/referrals/{rid}/notes",
            json={"text": text, "visibility": visibility},
            headers=callers(who),
        )
        assert added.status_code == 201, added.json


def everything_seen_by(client: FlaskClient, callers: Callers, who: str, rid: str) -> str:
    """Every response body a caller gets about the referral, as one text."""
    texts = []
    for suffix in ("", "/events", "/notes"):
        got = client.get(f"{API}/referrals/{rid}{suffix}", headers=callers(who))
        assert got.status_code == 200, got.json
        texts.append(got.get_data(as_text=True))
    listed = client.get(f"{API}/referrals", headers=callers(who))
    assert listed.status_code == 200, listed.json
    return "\n".join([*texts, listed.get_data(as_text=True)])


@pytest.mark.parametrize(
    ("reader", "visible"),
    [
        pytest.param("yw_own", {("yw_own", "internal"), ("yw_own", "shared"),
                                ("cw_own", "shared")}, id="sender"),
        pytest.param("cw_own", {("cw_own", "internal"), ("cw_own", "shared"),
                                ("yw_own", "shared")}, id="receiver"),
    ],
)  # fmt: skip
def test_each_side_reads_shared_notes_and_only_its_own_internal_ones(
    client: FlaskClient,
    callers: Callers,
    reader: str,
    visible: set[tuple[str, str]],
) -> None:
    rid, _ = make_referral(client, callers, "in_progress")
    add_notes(client, callers, rid)

    got = client.get(f"{API}/referrals/{rid}/notes", headers=callers(reader))

    assert got.status_code == 200, got.json
    assert got.headers["Cache-Control"] == "no-store"
    items = got.json["items"]
    assert sorted(n["text"] for n in items) == sorted(NOTES[k] for k in visible)
    for note in items:
        (author,) = [who for (who, vis), text in NOTES.items() if text == note["text"]]
        assert note["author_side"] == SIDE_OF[author]
        assert note["author_unit"] == CALLERS[author][1]
    hidden = set(NOTES) - visible
    seen = everything_seen_by(client, callers, reader, rid)
    assert [NOTES[k] for k in hidden if NOTES[k] in seen] == []


def test_a_redirect_target_does_not_inherit_the_previous_units_internal_notes(
    client: FlaskClient, callers: Callers
) -> None:
    """Internal notes belong to the unit that wrote them, not to whoever holds the case.

    Norrmalm's internal working notes must not travel to Södermalm with a redirect;
    shared notes, meant for the other side, do.
    """
    rid, _ = make_referral(client, callers, "requested")
    add_notes(client, callers, rid)
    redirected = client.post(
        f"{API}/referrals/{rid}/redirect",
        json={"unit": "sodermalm", "reason_code": "wrong_district"},
        headers=callers("cw_own"),
    )
    assert redirected.status_code == 200, redirected.json
    # Other units' note texts reach the new unit with the disclosure (on accept).
    accepted = client.post(f"{API}/referrals/{rid}/accept", json={}, headers=callers("cw_other"))
    assert accepted.status_code == 200, accepted.json

    got = client.get(f"{API}/referrals/{rid}/notes", headers=callers("cw_other"))

    assert got.status_code == 200, got.json
    assert sorted(n["text"] for n in got.json["items"]) == sorted(
        [NOTES["yw_own", "shared"], NOTES["cw_own", "shared"]]
    )
    assert NOTES["cw_own", "internal"] not in everything_seen_by(client, callers, "cw_other", rid)
    # And the previous unit has lost access altogether.
    gone = client.get(f"{API}/referrals/{rid}/notes", headers=callers("cw_own"))
    assert_problem(gone, HIDDEN)


# --- the routing preview: a youth worker of a *referring* unit, as for opening one ------


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param("norrmalm", id="receiving-unit"),
        pytest.param("intake", id="intake-unit"),
        pytest.param("enhet-finns-inte", id="unregistered-unit"),
    ],
)
def test_a_youth_worker_outside_a_referring_unit_may_not_preview_routing(
    client: FlaskClient,
    database: Database,
    dev_token: Callable[..., str],
    unit: str,
) -> None:
    """README: Roles, Routing and issue 5: the preview is for admins and for youth workers of a
    referring unit, the callers who may open a referral.  A youth-worker token whose unit
    claim names a receiving unit, or no registered unit, may not open one (403), and so
    may not map out the routing rules (every rule, position, unit and condition tried)
    through the preview either."""
    headers = {"Authorization": f"Bearer {dev_token('youth_worker', unit)}"}
    before = snapshot(database)

    opened = client.post(f"{API}{REFERRALS}", json=referral_body(), headers=headers)
    assert_problem(opened, ROLE)
    # Opened and submitted at once: the unit is checked against the kinds read with the
    # rules (routing_inputs), not by the draft's own lookup.
    submitted = {**referral_body(), "submit": True}
    assert_problem(client.post(f"{API}{REFERRALS}", json=submitted, headers=headers), ROLE)
    previewed = client.post(f"{API}{PREVIEW}", json=preview_body(), headers=headers)

    assert_problem(previewed, ROLE)
    assert "explanation" not in previewed.get_json()
    assert snapshot(database) == before
