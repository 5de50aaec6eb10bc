"""Referral bodies in and out."""

from __future__ import annotations

from marshmallow import fields, validate

from referrals.api.schemas.common import SLUG, Moment, Pattern, StrictSchema, code_field, text
from referrals.domain.codes import (
    Action,
    Category,
    ConsentGiver,
    ConsentWithdrawal,
    Disclosure,
    LegalBasis,
    NoteVisibility,
    OutcomeCode,
    Priority,
    ReasonCode,
    RevealReason,
    Side,
    Status,
)

PHONE = Pattern(r"^\+?[0-9 ()-]{3,30}$", error="Not a valid phone number.")


class SubjectIn(StrictSchema):
    name = text(200, allow_none=True)
    personal_number = fields.String(
        allow_none=True,
        validate=validate.Length(min=10, max=13),
        metadata={"description": "personnummer or samordningsnummer, 10 or 12 digits"},
    )
    birth_date = fields.Date(allow_none=True)
    phone = fields.String(allow_none=True, validate=PHONE)
    district = fields.String(allow_none=True, validate=SLUG)


class GuardianIn(StrictSchema):
    name = text(200, allow_none=True)
    phone = fields.String(allow_none=True, validate=PHONE)


class ConsentIn(StrictSchema):
    given_by = code_field(ConsentGiver, required=True)
    given_at = Moment(required=True)


class ReferralBody(StrictSchema):
    """What a youth worker writes.  ``null`` means "not given"."""

    subject = fields.Nested(SubjectIn, allow_none=True)
    guardian = fields.Nested(GuardianIn, allow_none=True)
    categories = fields.List(
        code_field(Category), validate=validate.Length(max=len(Category)), allow_none=True
    )
    priority = code_field(Priority, allow_none=True)
    legal_basis = code_field(LegalBasis, allow_none=True)
    consent = fields.Nested(ConsentIn, allow_none=True)
    place_met = text(500, allow_none=True)
    narrative = text(20_000, allow_none=True)


class ReferralCreate(ReferralBody):
    submit = fields.Boolean(load_default=False)


class SubjectOut(StrictSchema):
    name = fields.String()
    personal_number = fields.String()
    birth_date = fields.Date()
    phone = fields.String()
    district = fields.String()
    age = fields.Integer(metadata={"description": "age in years at submission"})


class GuardianOut(StrictSchema):
    name = fields.String()
    phone = fields.String()


class ConsentOut(StrictSchema):
    given_by = fields.String()
    given_at = fields.AwareDateTime()
    withdrawn_at = fields.AwareDateTime(
        metadata={"description": "when the sender recorded that the consent was withdrawn"}
    )


class DuplicateOut(StrictSchema):
    id = fields.UUID()
    status = code_field(Status)


class RoutingOut(StrictSchema):
    rule_id = fields.String()
    ruleset_version = fields.Integer()


class ReferralOut(StrictSchema):
    id = fields.UUID()
    version = fields.Integer()
    status = code_field(Status)
    sending_unit = fields.String()
    receiving_unit = fields.String(allow_none=True)
    priority = code_field(Priority)
    categories = fields.List(fields.String())
    legal_basis = fields.String(allow_none=True)
    consent = fields.Nested(ConsentOut, allow_none=True)
    subject = fields.Nested(SubjectOut, allow_none=True)
    guardian = fields.Nested(GuardianOut, allow_none=True)
    place_met = fields.String(allow_none=True)
    narrative = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    reason_code = fields.String(allow_none=True)
    outcome_code = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    submitted_at = fields.AwareDateTime(allow_none=True)
    due_at = fields.AwareDateTime(allow_none=True)
    routing = fields.Nested(
        RoutingOut,
        allow_none=True,
        metadata={"description": "The routing rule and rule-set version that chose the unit."},
    )
    overdue = fields.Boolean()
    open = fields.Boolean()
    integrity_error = fields.Boolean(
        metadata={"description": "in listings: this referral's sealed data failed its check"}
    )
    erased = fields.Boolean(
        metadata={"description": "personal data crypto-shredded; only the skeleton remains"}
    )
    disclosure = code_field(
        Disclosure,
        metadata={
            "description": "What this view shows (two-phase disclosure, "
            "REFERRALS_DISCLOSURE_POLICY): `full`, or `decision` — the receiving unit "
            "before it accepted or revealed (policy `on_accept`): no name, personal "
            "number, birth date, phone, guardian, narrative or place met."
        },
    )
    possible_duplicates = fields.List(
        fields.Nested(DuplicateOut),
        metadata={
            "description": "On submit: open referrals for the same personal number that the "
            "caller may see (id and status only)."
        },
    )


class ReferralPage(StrictSchema):
    items = fields.List(fields.Nested(ReferralOut))
    next_cursor = fields.String(allow_none=True)


class SearchBody(StrictSchema):
    """The personal number travels in the body, never in a URL."""

    personal_number = fields.String(required=True, validate=validate.Length(min=10, max=13))


class ReferralList(StrictSchema):
    items = fields.List(fields.Nested(ReferralOut))


class ListArgs(StrictSchema):
    status = code_field(Status)
    priority = code_field(Priority)
    overdue = fields.Boolean()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


# Bodies of POST /referrals/{id}/{action}; each accepts exactly what its action uses.
class EmptyBody(StrictSchema):
    pass


ASSIGNEE_DESCRIPTION = (
    "The OIDC subject (``sub``, under the caller's issuer) of a caseworker or unit lead of "
    "the receiving unit whom the service has seen acting for it; anyone else is refused "
    "(422)."
)


class AcceptBody(StrictSchema):
    assignee = text(
        200, allow_none=True, metadata={"description": ASSIGNEE_DESCRIPTION + " Unsaid: nobody."}
    )


class AssignBody(StrictSchema):
    assignee = text(
        200,
        required=True,
        allow_none=True,
        metadata={"description": ASSIGNEE_DESCRIPTION + " ``null`` releases the referral."},
    )


class ReasonBody(StrictSchema):
    reason_code = code_field(ReasonCode, required=True)
    reason_text = text(2_000, allow_none=True)


class RedirectBody(ReasonBody):
    unit = fields.String(required=True, validate=SLUG)


class CompleteBody(StrictSchema):
    outcome_code = code_field(OutcomeCode, required=True)


ACTION_BODIES: dict[Action, type[StrictSchema]] = {
    Action.SUBMIT: EmptyBody,
    Action.ACCEPT: AcceptBody,
    Action.DECLINE: ReasonBody,
    Action.REDIRECT: RedirectBody,
    Action.CANCEL: ReasonBody,
    Action.START: EmptyBody,
    Action.HOLD: ReasonBody,
    Action.RESUME: EmptyBody,
    Action.COMPLETE: CompleteBody,
    Action.FAIL: ReasonBody,
    Action.MARK_ERROR: ReasonBody,
}


class RevealBody(StrictSchema):
    reason_code = code_field(
        RevealReason,
        required=True,
        metadata={"description": "why the identity is needed before deciding"},
    )


class WithdrawConsentBody(StrictSchema):
    reason_code = code_field(
        ConsentWithdrawal,
        required=True,
        metadata={"description": "who withdrew the consent"},
    )


class EventOut(StrictSchema):
    id = fields.UUID()
    at = fields.AwareDateTime()
    action = fields.String(
        metadata={
            "description": "a transition (`submit`, `accept`, …), or `create`, `erase`, "
            "`reveal` (the receiving unit revealed the identity before deciding; "
            "`reason_code` says why) or `withdraw_consent` (the sender recorded a "
            "withdrawal of consent; `reason_code` says whose)"
        }
    )
    actor_unit = fields.String(allow_none=True)
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    from_unit = fields.String(allow_none=True)
    to_unit = fields.String(allow_none=True)
    reason_code = fields.String(allow_none=True)
    reason_text = fields.String(
        allow_none=True,
        metadata={"description": "null in a decision view when another unit wrote it"},
    )
    outcome_code = fields.String(allow_none=True)
    rule_id = fields.String(
        allow_none=True, metadata={"description": "The routing rule that chose to_unit."}
    )
    ruleset_version = fields.Integer(allow_none=True)
    previous_assignee = fields.String(
        allow_none=True,
        metadata={"description": "Assignments (receiving unit only): the subject before."},
    )
    assignee = fields.String(
        allow_none=True,
        metadata={"description": "Assignments (receiving unit only): the subject after."},
    )


class EventList(StrictSchema):
    items = fields.List(fields.Nested(EventOut))


class NoteIn(StrictSchema):
    text = text(10_000, required=True)
    visibility = code_field(NoteVisibility, required=True)


class NoteOut(StrictSchema):
    id = fields.UUID()
    created_at = fields.AwareDateTime()
    author_unit = fields.String(allow_none=True)
    author_side = code_field(Side)
    visibility = code_field(NoteVisibility)
    text = fields.String(allow_none=True)
    withheld = fields.Boolean(
        metadata={
            "description": "the text of another unit's note, withheld (null) until the "
            "referral is disclosed to the caller's unit (two-phase disclosure)"
        }
    )


class NoteList(StrictSchema):
    items = fields.List(fields.Nested(NoteOut))
