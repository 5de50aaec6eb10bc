"""Readiness out."""

from __future__ import annotations

from marshmallow import fields

from referrals.api.schemas.common import StrictSchema


class ReadinessOut(StrictSchema):
    status = fields.String(metadata={"enum": ["ok"]})
    audit_sealer = fields.String(
        metadata={
            "enum": ["ok", "behind"],
            "description": "behind: audit events wait for their seal or checkpoint longer "
            "than allowed (REFERRALS_AUDIT_SEAL_LAG); alert, the instance still serves",
        }
    )
