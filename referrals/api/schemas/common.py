"""Building blocks shared by every schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate


class Pattern(validate.Regexp):
    """A regular expression the whole value must match.

    The pattern is written in the syntax OpenAPI 3.1 documents (ECMA-262): anchored with
    ``^…$`` and bounded by its own repetition limits.  Python's ``$`` also matches before a
    trailing newline, so the value is matched with ``fullmatch``: "norrmalm\\n" is no slug.
    """

    def __init__(self, regex: str, *, error: str) -> None:
        super().__init__(regex, error=error)
        self.whole = re.compile(regex)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.whole.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


SLUG = Pattern(r"^[a-z0-9][a-z0-9-]{0,63}$", error="Must be a lowercase slug.")


class StrictSchema(Schema):
    """Rejects unknown fields: no ``status``, ``receiving_unit`` or id can be smuggled in."""

    class Meta:
        unknown = RAISE


def code_field(enum: type[StrEnum], **kwargs: object) -> fields.String:
    values = [member.value for member in enum]
    metadata = {"enum": values, **dict(kwargs.pop("metadata", None) or {})}  # type: ignore[call-overload]
    return fields.String(
        validate=validate.OneOf(values),
        metadata=metadata,
        **kwargs,  # type: ignore[arg-type]
    )


def integer(**kwargs: object) -> fields.Integer:
    """A JSON integer: 17.9 is refused, not truncated to 17."""
    return fields.Integer(strict=True, **kwargs)  # type: ignore[arg-type]


class Moment(fields.AwareDateTime):
    """A time with its offset, as UTC; refused when UTC cannot hold it.

    "0001-01-01T00:00:00+01:00" is a valid RFC 3339 time whose UTC is in year 0, which
    Python's datetime cannot represent (and 9999-12-31 at -01:00 is in year 10000).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError(
                "Out of range: must lie between years 1 and 9999 in UTC."
            ) from None


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
