"""Building blocks shared by every schema."""

from __future__ import annotations

from enum import StrEnum

from marshmallow import RAISE, Schema, fields, validate

# \Z, not $: "$" also matches before a trailing newline.
SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,63}\Z", error="Must be a lowercase slug.")


class StrictSchema(Schema):
    """Rejects unknown fields: no ``status``, ``receiving_unit`` or id can be smuggled in."""

    class Meta:
        unknown = RAISE


def code_field(enum: type[StrEnum], **kwargs: object) -> fields.String:
    values = [member.value for member in enum]
    return fields.String(
        validate=validate.OneOf(values),
        metadata={"enum": values},
        **kwargs,  # type: ignore[arg-type]
    )


def text(max_length: int, **kwargs: object) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)  # type: ignore[arg-type]


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(metadata={"example": "urn:referrals:problem:validation"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(
        fields.Dict(keys=fields.String(), values=fields.String()),
        metadata={"description": "Each entry names a field and what is wrong with it."},
    )
