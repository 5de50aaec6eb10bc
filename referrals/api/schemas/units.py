"""Unit bodies in and out."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import SLUG, StrictSchema, code_field, text
from referrals.domain.codes import UnitKind


class UnitBody(StrictSchema):
    name = text(200, required=True)
    kind = code_field(UnitKind, required=True)
    districts = fields.List(fields.String(validate=SLUG), load_default=list)
    webhook_url = fields.Url(
        allow_none=True, schemes={"https", "http"}, validate=validate.Length(max=2000)
    )


class UnitCreate(UnitBody):
    id = fields.String(required=True, validate=SLUG)


class UnitOut(StrictSchema):
    id = fields.String()
    name = fields.String()
    kind = code_field(UnitKind)
    districts = fields.List(fields.String())
    webhook_url = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class UnitList(StrictSchema):
    items = fields.List(fields.Nested(UnitOut))
