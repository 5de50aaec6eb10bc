"""Legal holds and the retention report: ids, statuses, codes and dates, no case content."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import StrictSchema, code_field
from referrals.domain.codes import LegalHoldReason, Status

# How far ahead the report looks, in days (at most ten years).
MAX_REPORT_DAYS = 3650


class LegalHoldIn(StrictSchema):
    reason_code = code_field(LegalHoldReason, required=True)


class LegalHoldOut(StrictSchema):
    referral_id = fields.UUID()
    status = code_field(Status)
    reason_code = code_field(LegalHoldReason)
    placed_at = fields.DateTime()
    placed_by = fields.String(metadata={"description": "issuer|subject of who placed it"})


class RetentionArgs(StrictSchema):
    days = fields.Integer(
        load_default=30,
        validate=validate.Range(min=0, max=MAX_REPORT_DAYS),
        metadata={"description": "how many days ahead to look"},
    )


class DueOut(StrictSchema):
    referral_id = fields.UUID()
    status = code_field(Status)
    outcome_code = fields.String(allow_none=True)
    since = fields.DateTime(metadata={"description": "when the retention clock started"})
    due_at = fields.DateTime(metadata={"description": "when its retention period ends"})
    past_due = fields.Boolean(metadata={"description": "already due: the worker erases it next"})


class HeldOut(LegalHoldOut):
    due_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "when it would be due without the hold (null: open)"},
    )


class RetentionReport(StrictSchema):
    as_of = fields.DateTime()
    days = fields.Integer()
    periods = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "retention period in days per status (the settings in force)"},
    )
    due_count = fields.Integer()
    held_count = fields.Integer()
    due = fields.List(
        fields.Nested(DueOut), metadata={"description": "soonest first, at most 1000"}
    )
    held = fields.List(fields.Nested(HeldOut), metadata={"description": "at most 1000"})
