"""Closed vocabularies of the referral domain.

Values are the wire and storage form (JSON bodies, URL segments, database columns), so they
are spelled out rather than generated and must never be renamed.
"""

from enum import StrEnum


class Status(StrEnum):
    """Referral status, aligned with HL7 FHIR Task status codes."""

    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    FAILED = "failed"
    ENTERED_IN_ERROR = "entered_in_error"


# No action leaves a final status.
FINAL_STATUSES: frozenset[Status] = frozenset(
    {
        Status.COMPLETED,
        Status.FAILED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.ENTERED_IN_ERROR,
    }
)

# Submitted and not yet final: the referral is live at a receiving unit.
OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD}
)


class Priority(StrEnum):
    """Urgency chosen by the sender; it sets the decision deadline."""

    ACUTE = "acute"
    URGENT = "urgent"
    NORMAL = "normal"


class LegalBasis(StrEnum):
    """Lawful ground for passing the young person's data on; required to submit."""

    CONSENT = "consent"
    DUTY_TO_REPORT = "duty_to_report"
    DUTY_TO_INFORM = "duty_to_inform"
    OTHER_STATUTE = "other_statute"


class ConsentGiver(StrEnum):
    """Who gave consent when the legal basis is consent."""

    SUBJECT = "subject"
    GUARDIAN = "guardian"


class Category(StrEnum):
    """Concern categories; kept in plaintext because routing and statistics use them."""

    DRUGS = "drugs"
    ALCOHOL = "alcohol"
    CRIMINALITY = "criminality"
    VIOLENCE = "violence"
    SEXUAL_EXPLOITATION = "sexual_exploitation"
    HOMELESSNESS = "homelessness"
    MENTAL_HEALTH = "mental_health"
    SCHOOL_ABSENCE = "school_absence"
    FAMILY_CONFLICT = "family_conflict"
    OTHER = "other"


class ReasonCode(StrEnum):
    """Coded reason for decline, redirect, cancel, hold, fail and mark-error."""

    WRONG_DISTRICT = "wrong_district"
    NO_CAPACITY = "no_capacity"
    NOT_APPROPRIATE = "not_appropriate"
    DUPLICATE = "duplicate"
    NO_LONGER_NEEDED = "no_longer_needed"
    SUBJECT_UNREACHABLE = "subject_unreachable"
    AWAITING_INFORMATION = "awaiting_information"
    SUBJECT_DECLINED = "subject_declined"
    MOVED = "moved"
    DATA_ENTRY_ERROR = "data_entry_error"
    WRONG_SUBJECT = "wrong_subject"
    OTHER = "other"


class OutcomeCode(StrEnum):
    """What the receiving unit reports back on completion (the closed loop)."""

    INVESTIGATION_OPENED = "investigation_opened"
    SUPPORT_STARTED = "support_started"
    NO_ACTION_NEEDED = "no_action_needed"
    REFERRED_ELSEWHERE = "referred_elsewhere"


class Action(StrEnum):
    """State-machine actions; values are the URL segments of ``POST /referrals/{id}/{action}``."""

    SUBMIT = "submit"
    ACCEPT = "accept"
    DECLINE = "decline"
    REDIRECT = "redirect"
    CANCEL = "cancel"
    START = "start"
    HOLD = "hold"
    RESUME = "resume"
    COMPLETE = "complete"
    FAIL = "fail"
    MARK_ERROR = "mark-error"


class Side(StrEnum):
    """Which end of a referral the caller acts for."""

    SENDER = "sender"
    RECEIVER = "receiver"


class NoteVisibility(StrEnum):
    """Internal notes stay with the writer's unit; shared notes are seen by both sides."""

    INTERNAL = "internal"
    SHARED = "shared"


class UnitKind(StrEnum):
    """Whether a unit sends referrals or receives them."""

    REFERRER = "referrer"
    RECEIVER = "receiver"


class EraseReason(StrEnum):
    """Why a referral's personal data was crypto-shredded; codes, never free text."""

    DATA_SUBJECT_REQUEST = "data_subject_request"
    RETENTION_EXPIRED = "retention_expired"
    ENTERED_IN_ERROR = "entered_in_error"
    LEGAL_ORDER = "legal_order"


class BreakGlassReason(StrEnum):
    """Why a caseworker opens a referral outside their unit; codes, never free text."""

    RISK_TO_LIFE = "risk_to_life"
    CHILD_PROTECTION_EMERGENCY = "child_protection_emergency"
    POLICE_REQUEST = "police_request"
    CONTINUITY_OF_CARE = "continuity_of_care"


class LegalHoldReason(StrEnum):
    """Why a referral must outlive its retention period for now; codes, never free text."""

    # A complaint about the handling of the case (klagomål) is being dealt with.
    COMPLAINT = "complaint"
    # A supervisory authority (IVO, IMY, JO) reviews the case.
    SUPERVISION = "supervision"
    # The case is part of court proceedings or an appeal.
    LITIGATION = "litigation"
    # A police or prosecutor's investigation has asked for the material.
    CRIMINAL_INVESTIGATION = "criminal_investigation"
    # A request of the data subject (access, rectification) is being answered.
    DATA_SUBJECT_REQUEST = "data_subject_request"
    # Internal control or an audit review needs the case as it is.
    AUDIT_REVIEW = "audit_review"


class RevealReason(StrEnum):
    """Why a receiving unit's caseworker reveals a referral's identity before deciding."""

    KNOWN_TO_UNIT = "known_to_unit"
    OPEN_CASE_CHECK = "open_case_check"
    DUPLICATE_CHECK = "duplicate_check"
    RISK_ASSESSMENT = "risk_assessment"


class ConsentWithdrawal(StrEnum):
    """Who withdrew the consent a referral was passed on under."""

    BY_SUBJECT = "withdrawn_by_subject"
    BY_GUARDIAN = "withdrawn_by_guardian"


# The reason code of a referral closed because its consent was withdrawn.
CONSENT_WITHDRAWN = "consent_withdrawn"


class DisclosurePolicy(StrEnum):
    """When the receiving unit's caseworkers see who a referral is about
    (REFERRALS_DISCLOSURE_POLICY)."""

    ON_ACCEPT = "on_accept"
    ON_RECEIPT = "on_receipt"


class Disclosure(StrEnum):
    """What one view of a referral shows: everything, or what the decision needs."""

    FULL = "full"
    DECISION = "decision"
