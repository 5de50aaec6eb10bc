"""Audit trail bodies out, and the auditor's search filters in."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import Moment, StrictSchema, code_field
from referrals.audit.actions import AuditAction, Outcome


class AuditEventArgs(StrictSchema):
    actor = fields.String(validate=validate.Length(max=500), metadata={"description": "subject"})
    referral = fields.UUID()
    action = code_field(AuditAction)
    outcome = code_field(Outcome)
    since = Moment()
    until = Moment()
    break_glass = fields.Boolean(
        metadata={"description": "only accesses outside the actor's scope (review report)"}
    )
    unverified = fields.Boolean(
        metadata={
            "description": "with actor: also match what refused tokens claimed "
            "(default: verified actors only)"
        }
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(validate=validate.Length(max=200))


class ActorOut(StrictSchema):
    verified = fields.Boolean()
    issuer = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    client_id = fields.String(allow_none=True)
    roles = fields.List(fields.String())
    unit = fields.String(allow_none=True)


class AuditEventOut(StrictSchema):
    id = fields.UUID()
    seq = fields.Integer(
        allow_none=True, metadata={"description": "chain position; null until sealed"}
    )
    recorded_at = fields.AwareDateTime()
    request_id = fields.String()
    actor = fields.Nested(ActorOut)
    action = fields.String()
    target_type = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    outcome = fields.String()
    http_status = fields.Integer()
    purpose = fields.String(
        allow_none=True, metadata={"description": "break-glass:<reason> for emergency access"}
    )
    reason = fields.String(
        metadata={
            "description": "an operator's reason for a command-line change (code or ticket "
            "reference); absent otherwise"
        }
    )
    disclosed = fields.List(
        fields.UUID(),
        metadata={
            "description": "referrals the response disclosed besides the target (list items, "
            "search matches, possible duplicates); absent when none"
        },
    )
    repeated = fields.Integer(
        allow_none=True,
        metadata={
            "description": "an unverified actor's refusals: how many of the same claim, "
            "action and status this event stands for in its minute (itself included)"
        },
    )


class AuditEventPage(StrictSchema):
    items = fields.List(fields.Nested(AuditEventOut))
    next_cursor = fields.String(allow_none=True)


class AuditEventList(StrictSchema):
    items = fields.List(fields.Nested(AuditEventOut))


class FindingOut(StrictSchema):
    seq = fields.Integer()
    problem = fields.String()
    detail = fields.String()


class FreshnessOut(StrictSchema):
    problems = fields.List(
        fields.String(metadata={"enum": ["sealing-behind", "checkpoint-overdue"]}),
        metadata={"description": "empty when the chain is current"},
    )
    oldest_pending_age = fields.Float(
        allow_none=True, metadata={"description": "seconds the oldest unsealed event has waited"}
    )
    unsigned = fields.Integer(metadata={"description": "sealed events after the last checkpoint"})
    oldest_unsigned_age = fields.Float(
        allow_none=True,
        metadata={"description": "seconds since the first unsigned event was sealed"},
    )
    newest_checkpoint = fields.AwareDateTime(allow_none=True)
    allowed_lag = fields.Float(metadata={"description": "REFERRALS_AUDIT_SEAL_LAG"})
    checkpoint_interval = fields.Float(
        metadata={"description": "REFERRALS_AUDIT_CHECKPOINT_INTERVAL"}
    )


class FlaggedOut(StrictSchema):
    seq = fields.Integer()
    flag = fields.String(metadata={"enum": ["backdated", "future"]})


class VerificationOut(StrictSchema):
    status = fields.String(
        metadata={
            "enum": ["ok", "behind", "flagged", "failed"],
            "description": "failed: the chain is not intact (see finding); flagged: intact, "
            "but the sealer flagged events whose recorded_at was not close to when it first "
            "saw them (see flagged; review them); behind: intact, but events wait for their "
            "seal or checkpoint longer than allowed (see freshness)",
        }
    )
    finding = fields.Nested(FindingOut, allow_none=True)
    sealed = fields.Integer()
    pending = fields.Integer()
    checkpoints = fields.Integer()
    flagged = fields.List(
        fields.Nested(FlaggedOut),
        metadata={"description": "events sealed with a flag (a back-dated or future time)"},
    )
    freshness = fields.Nested(FreshnessOut)


class CheckpointOut(StrictSchema):
    seq = fields.Integer()
    head = fields.String()
    created_at = fields.AwareDateTime()
    previous = fields.String(allow_none=True)
    key_id = fields.String()
    signature = fields.String()


class CheckpointList(StrictSchema):
    items = fields.List(fields.Nested(CheckpointOut))
