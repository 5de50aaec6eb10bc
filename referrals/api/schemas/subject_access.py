"""A data subject's access request: the personal number in, everything held out."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import StrictSchema
from referrals.api.schemas.referrals import EventOut, NoteOut, ReferralOut


class SubjectAccessBody(StrictSchema):
    """The personal number travels in the body, never in a URL."""

    personal_number = fields.String(required=True, validate=validate.Length(min=10, max=13))


class RecipientOut(StrictSchema):
    unit = fields.String()
    unit_name = fields.String(allow_none=True)
    role = fields.String(metadata={"description": "sender or receiver"})
    start = fields.AwareDateTime(data_key="from")
    until = fields.AwareDateTime(
        allow_none=True, metadata={"description": "a redirect took it away; null: still held"}
    )


class AccessOut(StrictSchema):
    at = fields.AwareDateTime()
    action = fields.String(metadata={"description": "audit action, e.g. referral:read"})
    unit = fields.String(allow_none=True)
    roles = fields.List(fields.String())
    purpose = fields.String(
        allow_none=True, metadata={"description": "break-glass:<reason> for emergency access"}
    )


class HeldReferralOut(StrictSchema):
    referral = fields.Nested(ReferralOut)
    timeline = fields.List(fields.Nested(EventOut))
    notes = fields.List(fields.Nested(NoteOut), metadata={"description": "shared notes"})
    internal_notes_withheld = fields.Integer(
        metadata={"description": "internal notes not in this export (see internal_notes_rule)"}
    )
    recipients = fields.List(fields.Nested(RecipientOut))
    access_log = fields.List(
        fields.Nested(AccessOut),
        metadata={"description": "allowed requests that read or changed it, oldest first"},
    )


class SubjectAccessOut(StrictSchema):
    generated_at = fields.AwareDateTime()
    personal_number = fields.String(metadata={"description": "normalised, 12 digits"})
    referrals = fields.List(fields.Nested(HeldReferralOut))
    unreadable = fields.Integer(
        metadata={"description": "candidates whose sealed data failed its integrity check"}
    )
    internal_notes_rule = fields.String()
