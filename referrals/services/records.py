"""The one place where personal fields move between use cases and rows.

Every ``sealed`` column is written here, sealed with the referral's data key
(``Sealer``), and opened here.  Use cases open a referral's fields once per request
(``open_case``) and shape responses from that plaintext; nothing else in the package
touches a personal value in a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from referrals.auth import policy
from referrals.db.models import Note, Referral, TimelineEvent
from referrals.domain.codes import OPEN_STATUSES, Disclosure, Side, Status
from referrals.domain.deadlines import is_overdue
from referrals.domain.errors import MissingRequirement
from referrals.domain.personal_number import parse_personal_number
from referrals.services.vault import Sealer, Vault

CaseInput = dict[str, Any]
Plain = dict[str, str | None]

# The referral's own sealed columns (notes and events seal theirs below).
CASE_FIELDS = (
    "subject_name",
    "personal_number",
    "birth_date",
    "phone",
    "guardian_name",
    "guardian_phone",
    "narrative",
    "place_met",
)
NO_FIELDS: Plain = dict.fromkeys(CASE_FIELDS)


def open_case(row: Referral, sealer: Sealer | None) -> Plain:
    """The referral's personal fields in plaintext; all None once it has been erased."""
    if sealer is None:
        return dict(NO_FIELDS)
    return {
        name: sealer.open("referrals", row.id, name, getattr(row, name)) for name in CASE_FIELDS
    }


def write_case(
    row: Referral, case: Mapping[str, Any], *, today: date, sealer: Sealer, vault: Vault
) -> Plain:
    """Copy a validated referral body onto a row (a whole replacement of case fields).

    Returns the personal fields as sealed, so the caller need not open them again."""
    subject = case.get("subject") or {}
    guardian = case.get("guardian") or {}
    consent = case.get("consent") or {}
    personal_number, birth_date = identity_of(subject, today)

    plain: Plain = {
        "subject_name": subject.get("name"),
        "personal_number": personal_number,
        "birth_date": birth_date.isoformat() if birth_date else None,
        "phone": subject.get("phone"),
        "guardian_name": guardian.get("name"),
        "guardian_phone": guardian.get("phone"),
        "narrative": case.get("narrative"),
        "place_met": case.get("place_met"),
    }
    for name, value in plain.items():
        setattr(row, name, sealer.seal("referrals", row.id, name, value))
    row.personal_number_index = (
        vault.personal_number_index(personal_number) if personal_number else None
    )
    row.district = subject.get("district")
    row.categories = sorted(set(case.get("categories") or []))
    row.priority = case.get("priority") or row.priority
    row.legal_basis = case.get("legal_basis")
    row.consent_given_by = consent.get("given_by")
    row.consent_given_at = consent.get("given_at")
    return plain


def identity_of(subject: Mapping[str, Any], today: date) -> tuple[str | None, date | None]:
    """The normalised personal number and the birth date a subject body gives, checked
    against each other: (None, None) for a young person who gave no identity."""
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
    return personal_number, birth_date


def erase_case(row: Referral) -> None:
    """Crypto-shredding: without the wrapped data key no retained key opens a field.

    The ciphertexts and the blind index go too, so a backup taken afterwards holds
    nothing of the person at all."""
    for name in CASE_FIELDS:
        setattr(row, name, None)
    row.dek_wrapped = None
    row.kek_id = None
    row.personal_number_index = None
    for event in row.events:
        event.reason_text = None
    for note in row.notes:
        note.text = None


def case_input(row: Referral, plain: Plain) -> CaseInput:
    """The referral as a create body would describe it: the base for a merge patch."""
    return (
        _prune(
            {
                "subject": _prune(
                    {
                        "name": plain["subject_name"],
                        "personal_number": plain["personal_number"],
                        # Derived from the personal number when there is one.
                        "birth_date": None if plain["personal_number"] else birth_date_of(plain),
                        "phone": plain["phone"],
                        "district": row.district,
                    }
                ),
                "guardian": _prune(
                    {"name": plain["guardian_name"], "phone": plain["guardian_phone"]}
                ),
                "categories": list(row.categories),
                "priority": row.priority,
                "legal_basis": row.legal_basis,
                "consent": _prune(
                    {"given_by": row.consent_given_by, "given_at": row.consent_given_at}
                ),
                "place_met": plain["place_met"],
                "narrative": plain["narrative"],
            }
        )
        or {}
    )


def birth_date_of(plain: Plain) -> date | None:
    value = plain["birth_date"]
    return date.fromisoformat(value) if value else None


def represent(
    row: Referral,
    side: Side | None,
    plain: Plain,
    *,
    now: datetime,
    disclosure: Disclosure = Disclosure.FULL,
) -> dict[str, Any]:
    """The referral as ``side`` sees it.  For a ``decision`` view the personal fields are
    not even opened (``access.case_sealer``); should any be passed, none is shown."""
    if disclosure is Disclosure.DECISION:
        plain = NO_FIELDS
    subject = _prune(
        {
            "name": plain["subject_name"],
            "personal_number": plain["personal_number"],
            "birth_date": birth_date_of(plain),
            "phone": plain["phone"],
            "district": row.district,
            "age": row.age_at_submission,
        }
    )
    consent = _prune(
        {
            "given_by": row.consent_given_by,
            "given_at": row.consent_given_at,
            "withdrawn_at": row.consent_withdrawn_at,
        }
    )
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
        "guardian": _prune({"name": plain["guardian_name"], "phone": plain["guardian_phone"]}),
        "place_met": plain["place_met"],
        "narrative": plain["narrative"],
        "assignee": row.assignee if policy.may_see_assignee(side) else None,
        "reason_code": row.reason_code,
        "outcome_code": row.outcome_code,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "submitted_at": row.submitted_at,
        "due_at": row.due_at,
        "routing": _prune(
            {"rule_id": row.routing_rule_id, "ruleset_version": row.routing_ruleset_version}
        ),
        "overdue": is_overdue(row.due_at, Status(row.status), now),
        "open": row.status in OPEN_STATUSES,
        "erased": row.erased_at is not None,
        "disclosure": disclosure,
    }


def write_event_text(event: TimelineEvent, sealer: Sealer, reason_text: str | None) -> None:
    event.reason_text = sealer.seal("timeline_events", event.id, "reason_text", reason_text)


def write_note_text(note: Note, sealer: Sealer, text: str) -> None:
    note.text = sealer.seal("notes", note.id, "text", text)


def represent_event(
    event: TimelineEvent,
    sealer: Sealer | None,
    side: Side | None,
    *,
    reader_unit: str | None = None,
) -> dict[str, Any]:
    """One timeline event.  With ``reader_unit`` (a decision view), the free text of
    events written by another unit is withheld: it may name the young person.  The
    assignee is shown to the receiving side only."""
    shown = sealer is not None and (reader_unit is None or event.actor_unit == reader_unit)
    reason_text = (
        sealer.open("timeline_events", event.id, "reason_text", event.reason_text)
        if sealer is not None and shown
        else None
    )
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
        "reason_text": reason_text,
        "outcome_code": event.outcome_code,
        "rule_id": event.rule_id,
        "ruleset_version": event.ruleset_version,
        **(
            {"previous_assignee": event.previous_assignee, "assignee": event.assignee}
            if policy.may_see_assignee(side)
            else {}
        ),
    }


def represent_note(
    note: Note, sealer: Sealer | None, *, reader_unit: str | None = None
) -> dict[str, Any]:
    """One note.  With ``reader_unit`` (a decision view), the text of notes written by
    another unit is withheld (``"withheld": true``) until the referral is disclosed."""
    withheld = reader_unit is not None and note.author_unit != reader_unit
    view = {
        "id": note.id,
        "created_at": note.created_at,
        "author_unit": note.author_unit,
        "author_side": note.author_side,
        "visibility": note.visibility,
        "text": sealer.open("notes", note.id, "text", note.text)
        if sealer and not withheld
        else None,
    }
    if withheld:
        view["withheld"] = True
    return view


def _prune(values: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v is not None and v != {}}
    return kept or None
