"""The one place where personal fields move between use cases and rows.

Every ``sensitive_text`` column is written by ``write_case`` / ``write_event_text`` /
``write_note_text`` and read by ``represent`` / ``case_input`` / ``represent_event`` /
``represent_note``.  Field sealing (encryption at rest, DESIGN §4) wraps exactly these
reads and writes; nothing else in the package touches a personal value in a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from referrals.auth import policy
from referrals.db.models import Note, Referral, TimelineEvent
from referrals.domain.codes import OPEN_STATUSES, Side, Status
from referrals.domain.deadlines import is_overdue
from referrals.domain.errors import MissingRequirement
from referrals.domain.personal_number import parse_personal_number

CaseInput = dict[str, Any]


def write_case(row: Referral, case: Mapping[str, Any], *, today: date) -> None:
    """Copy a validated referral body onto a row (a whole replacement of case fields)."""
    subject = case.get("subject") or {}
    guardian = case.get("guardian") or {}
    consent = case.get("consent") or {}
    birth_date: date | None = subject.get("birth_date")
    personal_number = None
    if subject.get("personal_number"):
        parsed = parse_personal_number(subject["personal_number"], today)
        personal_number = parsed.normalized
        if birth_date is not None and birth_date != parsed.birth_date:
            raise MissingRequirement(
                "birth_date does not match the personal number", field="subject.birth_date"
            )
        birth_date = parsed.birth_date
    if birth_date is not None and birth_date > today:
        raise MissingRequirement("birth_date is in the future", field="subject.birth_date")

    row.subject_name = subject.get("name")
    row.personal_number = personal_number
    row.birth_date = birth_date.isoformat() if birth_date else None
    row.phone = subject.get("phone")
    row.district = subject.get("district")
    row.guardian_name = guardian.get("name")
    row.guardian_phone = guardian.get("phone")
    row.categories = sorted(set(case.get("categories") or []))
    row.priority = case.get("priority") or row.priority
    row.legal_basis = case.get("legal_basis")
    row.consent_given_by = consent.get("given_by")
    row.consent_given_at = consent.get("given_at")
    row.place_met = case.get("place_met")
    row.narrative = case.get("narrative")


def case_input(row: Referral) -> CaseInput:
    """The referral as a create body would describe it: the base for a merge patch."""
    return (
        _prune(
            {
                "subject": _prune(
                    {
                        "name": row.subject_name,
                        "personal_number": row.personal_number,
                        # Derived from the personal number when there is one.
                        "birth_date": None if row.personal_number else birth_date_of(row),
                        "phone": row.phone,
                        "district": row.district,
                    }
                ),
                "guardian": _prune({"name": row.guardian_name, "phone": row.guardian_phone}),
                "categories": list(row.categories),
                "priority": row.priority,
                "legal_basis": row.legal_basis,
                "consent": _prune(
                    {"given_by": row.consent_given_by, "given_at": row.consent_given_at}
                ),
                "place_met": row.place_met,
                "narrative": row.narrative,
            }
        )
        or {}
    )


def birth_date_of(row: Referral) -> date | None:
    return date.fromisoformat(row.birth_date) if row.birth_date else None


def represent(row: Referral, side: Side | None, *, now: datetime) -> dict[str, Any]:
    subject = _prune(
        {
            "name": row.subject_name,
            "personal_number": row.personal_number,
            "birth_date": birth_date_of(row),
            "phone": row.phone,
            "district": row.district,
            "age": row.age_at_submission,
        }
    )
    consent = _prune({"given_by": row.consent_given_by, "given_at": row.consent_given_at})
    return {
        "id": row.id,
        "version": row.version,
        "status": row.status,
        "sending_unit": row.sending_unit_id,
        "receiving_unit": row.receiving_unit_id,
        "priority": row.priority,
        "categories": list(row.categories),
        "legal_basis": row.legal_basis,
        "consent": consent,
        "subject": subject,
        "guardian": _prune({"name": row.guardian_name, "phone": row.guardian_phone}),
        "place_met": row.place_met,
        "narrative": row.narrative,
        "assignee": row.assignee if policy.may_see_assignee(side) else None,
        "reason_code": row.reason_code,
        "outcome_code": row.outcome_code,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "submitted_at": row.submitted_at,
        "due_at": row.due_at,
        "overdue": is_overdue(row.due_at, Status(row.status), now),
        "open": row.status in OPEN_STATUSES,
    }


def write_event_text(event: TimelineEvent, reason_text: str | None) -> None:
    event.reason_text = reason_text


def write_note_text(note: Note, text: str) -> None:
    note.text = text


def represent_event(event: TimelineEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "action": event.action,
        "actor_unit": event.actor_unit,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "from_unit": event.from_unit,
        "to_unit": event.to_unit,
        "reason_code": event.reason_code,
        "reason_text": event.reason_text,
        "outcome_code": event.outcome_code,
    }


def represent_note(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "created_at": note.created_at,
        "author_unit": note.author_unit,
        "author_side": note.author_side,
        "visibility": note.visibility,
        "text": note.text,
    }


def _prune(values: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v is not None and v != {}}
    return kept or None
