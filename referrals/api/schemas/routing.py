"""Routing rules, rule-set versions, the preview, and webhook deliveries."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import SLUG, StrictSchema, code_field
from referrals.api.schemas.units import RuleBody, RuleMatch
from referrals.services.outbox import DeliveryState


class RuleOut(RuleBody):
    id = fields.String()
    match = fields.Nested(RuleMatch)
    ruleset_version = fields.Integer(
        metadata={"description": "The rule-set version this rule belongs to."}
    )


class RuleSetOut(StrictSchema):
    version = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime(allow_none=True)
    items = fields.List(fields.Nested(RuleOut))


class RuleSetArgs(StrictSchema):
    version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))


class RuleSetVersionOut(StrictSchema):
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    rules = fields.Integer(metadata={"description": "How many rules the version has."})


class RuleSetVersionList(StrictSchema):
    items = fields.List(fields.Nested(RuleSetVersionOut))


class ExplanationOut(StrictSchema):
    rule_id = fields.String()
    position = fields.Integer()
    unit = fields.String()
    matched = fields.Boolean()
    reasons = fields.List(fields.String())


class PreviewOut(StrictSchema):
    unit = fields.String()
    rule_id = fields.String()
    ruleset_version = fields.Integer()
    explanation = fields.List(
        fields.Nested(ExplanationOut),
        metadata={"description": "Each rule tried, in order, and why it did or did not match."},
    )


class DeliveryArgs(StrictSchema):
    state = code_field(DeliveryState)
    unit = fields.String(validate=SLUG)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


class DeliveryOut(StrictSchema):
    id = fields.UUID()
    webhook_id = fields.String()
    event_type = fields.String()
    referral_id = fields.UUID()
    unit = fields.String()
    state = code_field(DeliveryState)
    attempts = fields.Integer()
    created_at = fields.AwareDateTime()
    next_attempt_at = fields.AwareDateTime()
    last_attempt_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)


class DeliveryPage(StrictSchema):
    items = fields.List(fields.Nested(DeliveryOut))
    next_cursor = fields.String(allow_none=True)
