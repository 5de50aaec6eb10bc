"""Unit bodies in and out."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import SLUG, StrictSchema, code_field, integer, text
from referrals.domain.codes import Category, Priority, UnitKind
from referrals.domain.routing import MAX_AGE


class UnitBody(StrictSchema):
    name = text(200, required=True)
    kind = code_field(UnitKind, required=True)
    districts = fields.List(fields.String(validate=SLUG), load_default=list)
    webhook_url = fields.Url(
        allow_none=True, schemes={"https", "http"}, validate=validate.Length(max=2000)
    )
    webhook_enabled = fields.Boolean(
        metadata={
            "description": "False registers the endpoint without sending to it yet. "
            "Unsaid: true for a new endpoint, unchanged for the same one."
        },
    )


class UnitCreate(UnitBody):
    id = fields.String(required=True, validate=SLUG)


class UnitReplace(UnitBody):
    rotate_webhook_secret = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Issue a new signing secret (returned once) for the endpoint. "
            "A changed webhook_url always gets a new one."
        },
    )


class SeedUnit(UnitCreate):
    pass


class RuleMatch(StrictSchema):
    """Every key optional; ``{}`` is the catch-all.  Lists match when they overlap."""

    districts = fields.List(fields.String(validate=SLUG), validate=validate.Length(min=1))
    min_age = integer(validate=validate.Range(min=0, max=MAX_AGE))
    max_age = integer(validate=validate.Range(min=0, max=MAX_AGE))
    categories = fields.List(code_field(Category), validate=validate.Length(min=1))
    priorities = fields.List(code_field(Priority), validate=validate.Length(min=1))


class RuleBody(StrictSchema):
    position = integer(required=True, validate=validate.Range(min=0, max=1_000_000))
    unit = fields.String(required=True, validate=SLUG)
    match = fields.Nested(RuleMatch, load_default=dict)


class SeedDocument(StrictSchema):
    """``referrals seed file``: units to add and the rule set to install."""

    comment = fields.String(data_key="_comment")
    units = fields.List(fields.Nested(SeedUnit), required=True)
    rules = fields.List(fields.Nested(RuleBody), required=True, validate=validate.Length(min=1))


class UnitOut(StrictSchema):
    id = fields.String()
    name = fields.String()
    kind = code_field(UnitKind)
    districts = fields.List(fields.String())
    webhook_url = fields.String(allow_none=True)
    webhook_enabled = fields.Boolean(allow_none=True)
    webhook_secret = fields.String(
        metadata={
            "description": "Standard Webhooks signing secret; only in the answer that "
            "issued it (create with a webhook_url, or rotate_webhook_secret)."
        }
    )
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class UnitList(StrictSchema):
    items = fields.List(fields.Nested(UnitOut))


class ReassignBody(StrictSchema):
    from_ = text(
        200,
        required=True,
        data_key="from",
        metadata={"description": "Subject of the staff member whose open referrals move."},
    )
    to = text(
        200,
        required=True,
        metadata={"description": "Subject of a known caseworker or unit lead of the unit."},
    )
    dry_run = fields.Boolean(
        load_default=False,
        metadata={"description": "List what would move and change nothing."},
    )


class ReassignOut(StrictSchema):
    unit = fields.String()
    from_ = fields.String(data_key="from")
    to = fields.String()
    dry_run = fields.Boolean()
    count = fields.Integer()
    referrals = fields.List(
        fields.UUID(),
        metadata={"description": "Ids of the referrals moved (or that would move): no content."},
    )
