"""Statistics: the query in, suppressed counts out (null: withheld)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, post_load, validates_schema

from referrals.api.schemas.common import Pattern, StrictSchema
from referrals.services.statistics import DIMENSIONS

BY_PATTERN = r"^[a-z]{1,10}(,[a-z]{1,10})?$"
WITHHELD = "null when withheld (small-cell suppression)"


class StatisticsArgs(StrictSchema):
    start = fields.Date(
        data_key="from",
        metadata={"description": "first day counted (Stockholm); default: a year before `to`"},
    )
    end = fields.Date(
        data_key="to", metadata={"description": "last day counted (Stockholm); default: today"}
    )
    by = fields.String(
        load_default="month",
        validate=Pattern(BY_PATTERN, error="One or two dimensions, separated by a comma."),
        metadata={
            "description": "rows, or rows,columns: two of " + ", ".join(DIMENSIONS),
            "example": "district,month",
        },
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        by = data.get("by", "month").split(",")
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown:
            raise ValidationError(f"must be among {', '.join(DIMENSIONS)}", "by")
        if len(set(by)) != len(by):
            raise ValidationError("names a dimension twice", "by")

    @post_load
    def _split(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["by"] = tuple(data["by"].split(","))
        return data


class Percentiles(StrictSchema):
    """Nearest-rank percentiles of the hours from submission to the first decision."""

    p25 = fields.Float()
    p50 = fields.Float()
    p75 = fields.Float()
    p90 = fields.Float()


class CellOut(StrictSchema):
    value = fields.String()
    count = fields.Integer(allow_none=True, metadata={"description": WITHHELD})


class RowOut(StrictSchema):
    value = fields.String(metadata={"description": "the row's month, district or code"})
    count = fields.Integer(
        allow_none=True, metadata={"description": "the row's total; " + WITHHELD}
    )
    cells = fields.List(fields.Nested(CellOut), metadata={"description": "two dimensions only"})
    time_to_decision_hours = fields.Nested(
        Percentiles,
        allow_none=True,
        metadata={"description": "null when fewer than min_cell were decided"},
    )


class StatisticsOut(StrictSchema):
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    by = fields.List(fields.String())
    min_cell = fields.Integer()
    counted = fields.String(
        metadata={
            "description": "referrals; mentions when by category (a referral counts once "
            "per category it names)"
        }
    )
    rows = fields.List(fields.Nested(RowOut))
    column_totals = fields.List(
        fields.Nested(CellOut), metadata={"description": "two dimensions only"}
    )
    total = fields.Integer(allow_none=True, metadata={"description": WITHHELD})
    time_to_decision_hours = fields.Nested(Percentiles, allow_none=True)
