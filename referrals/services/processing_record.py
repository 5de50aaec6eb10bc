"""The record of processing activities (GDPR Art. 30), written from the code itself.

The personal data categories are the ``sealed`` columns of the models, found by their type
annotation; each must have an entry in ``SEALED_FIELDS`` or the record cannot be written
(``UndescribedField``), so a new personal field cannot ship without its description.  The
legal bases are the ``LegalBasis`` codes, the recipients the units in the database, the
retention periods the settings in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from referrals.db.base import Base
from referrals.domain.codes import LegalBasis
from referrals.domain.retention import RetentionPolicy
from referrals.services.uow import UnitOfWork

SEALED_ANNOTATION = "Mapped[sealed]"

YOUNG_PERSON = "young person referred"
GUARDIAN = "guardian of the young person"
MENTIONED = "other people mentioned in free text"
STAFF = "staff of the units (users)"


@dataclass(frozen=True)
class FieldEntry:
    subjects: tuple[str, ...]
    category: str
    description: str
    personal: bool = True


# Every sealed column, by (table, column).  A test fails when a sealed column has no entry
# here, or an entry names a column that is no longer sealed.
SEALED_FIELDS: Mapping[tuple[str, str], FieldEntry] = {
    ("referrals", "subject_name"): FieldEntry(
        (YOUNG_PERSON,), "identity", "the young person's name, as given (often none)"
    ),
    ("referrals", "personal_number"): FieldEntry(
        (YOUNG_PERSON,),
        "identity",
        "personnummer or samordningsnummer, when given; searchable only through a keyed "
        "blind index (HMAC-SHA256)",
    ),
    ("referrals", "birth_date"): FieldEntry(
        (YOUNG_PERSON,), "identity", "date of birth (from the personal number or given)"
    ),
    ("referrals", "phone"): FieldEntry((YOUNG_PERSON,), "contact", "the young person's phone"),
    ("referrals", "guardian_name"): FieldEntry((GUARDIAN,), "identity", "the guardian's name"),
    ("referrals", "guardian_phone"): FieldEntry((GUARDIAN,), "contact", "the guardian's phone"),
    ("referrals", "narrative"): FieldEntry(
        (YOUNG_PERSON, MENTIONED),
        "circumstances (free text; may hold health, family or offence data: Art. 9, Art. 10)",
        "what the youth worker saw and was told",
    ),
    ("referrals", "place_met"): FieldEntry(
        (YOUNG_PERSON,), "location", "where the young person was met"
    ),
    ("timeline_events", "reason_text"): FieldEntry(
        (YOUNG_PERSON, MENTIONED),
        "case handling (free text)",
        "optional words beside a reason code (decline, cancel, hold, fail, mark in error)",
    ),
    ("notes", "text"): FieldEntry(
        (YOUNG_PERSON, GUARDIAN, MENTIONED),
        "case handling (free text; may hold Art. 9 and Art. 10 data)",
        "notes of either side, internal or shared",
    ),
    ("units", "webhook_secret"): FieldEntry(
        (), "credential", "a unit's webhook signing secret: sealed, not personal data", False
    ),
}

# Plaintext columns that still relate to a person: coarse facts that routing and
# statistics need, and who did what.  Checked against the models by the tests.
PLAINTEXT_FIELDS: Mapping[tuple[str, str], FieldEntry] = {
    ("referrals", "district"): FieldEntry((YOUNG_PERSON,), "coarse", "district of residence"),
    ("referrals", "age_at_submission"): FieldEntry(
        (YOUNG_PERSON,), "coarse", "age in years when submitted"
    ),
    ("referrals", "categories"): FieldEntry(
        (YOUNG_PERSON,),
        "coarse (Art. 9 and Art. 10 where the category says so)",
        "concern categories (drugs, criminality, mental health, ...)",
    ),
    ("referrals", "legal_basis"): FieldEntry((YOUNG_PERSON,), "coarse", "the legal-basis code"),
    ("referrals", "consent_given_by"): FieldEntry(
        (YOUNG_PERSON, GUARDIAN), "coarse", "who consented, when consent is the basis"
    ),
    ("referrals", "created_by"): FieldEntry((STAFF,), "user identity", "who opened it"),
    ("referrals", "assignee"): FieldEntry((STAFF,), "user identity", "who handles it"),
    ("timeline_events", "actor"): FieldEntry((STAFF,), "user identity", "who changed it"),
    ("notes", "author"): FieldEntry((STAFF,), "user identity", "who wrote a note"),
    ("audit_events", "actor_subject"): FieldEntry(
        (STAFF,), "user identity", "who accessed what, when (the audit trail)"
    ),
    ("legal_holds", "placed_by"): FieldEntry((STAFF,), "user identity", "who placed a hold"),
}

LEGAL_BASES: Mapping[LegalBasis, str] = {
    LegalBasis.CONSENT: (
        "consent of the young person or the guardian, who consented and when recorded "
        "(GDPR Art. 6(1)(a), Art. 9(2)(a))"
    ),
    LegalBasis.DUTY_TO_REPORT: (
        "the duty to report concern about a child to social services (SoL 14 kap. 1 §; "
        "GDPR Art. 6(1)(c), Art. 9(2)(b))"
    ),
    LegalBasis.DUTY_TO_INFORM: (
        "a statutory duty to inform another authority (GDPR Art. 6(1)(c) or (e))"
    ),
    LegalBasis.OTHER_STATUTE: (
        "another statute, named in the organisation's assessment (GDPR Art. 6(1)(c) or (e))"
    ),
}

PURPOSES = (
    "pass a concern about a young person from an outreach unit to the social-services "
    "unit responsible for them (routing by district, age, concern and priority)",
    "let the receiving unit decide on it in time, and report the outcome back to the "
    "sender (the closed loop)",
    "account for every access and change (audit trail; GDPR Art. 5(2), Art. 32)",
)

SECURITY_MEASURES = (
    "every sealed field encrypted at rest with AES-256-GCM under a data key of its own "
    "referral, wrapped by a versioned key-encryption key (envelope encryption); ciphertext "
    "bound to its table, row and field",
    "search by personal number through a keyed blind index (HMAC-SHA256), exact match only",
    "erasure by crypto-shredding: the data key, blind index, ciphertexts and free texts go",
    "retention erasure by the worker, per the periods below; legal holds stop it",
    "OpenID Connect access tokens; roles and the caller's unit decide each access; "
    "default deny, 404 outside the caller's scope",
    "every access and change audited, allowed or denied, in a SHA-256 hash chain with "
    "Ed25519-signed checkpoints; no personal data in the trail or the logs",
    "webhooks carry ids and codes only, signed (Standard Webhooks, HMAC-SHA256)",
)


class UndescribedField(Exception):
    """A sealed column without an entry in ``SEALED_FIELDS``: say what it holds first."""


def sealed_columns(base: type[DeclarativeBase] = Base) -> list[tuple[str, str]]:
    """(table, column) of every column declared ``Mapped[sealed]`` in the models."""
    found = []
    for mapper in base.registry.mappers:
        cls = mapper.class_
        table = getattr(cls, "__tablename__", None)
        for klass in cls.__mro__:
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                text = annotation if isinstance(annotation, str) else repr(annotation)
                if table and text.replace(" ", "") == SEALED_ANNOTATION:
                    found.append((table, name))
    return sorted(set(found))


def personal_fields(base: type[DeclarativeBase] = Base) -> dict[tuple[str, str], FieldEntry]:
    columns = sealed_columns(base)
    missing = [f"{t}.{c}" for t, c in columns if (t, c) not in SEALED_FIELDS]
    if missing:
        raise UndescribedField(
            "sealed columns without an entry in SEALED_FIELDS: " + ", ".join(missing)
        )
    return {key: SEALED_FIELDS[key] for key in columns}


def build(
    uow: UnitOfWork,
    periods: RetentionPolicy,
    *,
    extra_retention: Mapping[str, str],
    now: datetime,
    base: type[DeclarativeBase] = Base,
) -> dict[str, Any]:
    """The record as data (JSON-ready)."""
    sealed = personal_fields(base)
    units = uow.units.all()
    subjects = sorted(
        {s for e in [*sealed.values(), *PLAINTEXT_FIELDS.values()] for s in e.subjects}
    )
    return {
        "generated_at": now.isoformat(),
        "controller": "the organisation running this service (fill in name and DPO contact)",
        "purposes": list(PURPOSES),
        "legal_bases": {basis.value: LEGAL_BASES[basis] for basis in LegalBasis},
        "data_subjects": subjects,
        "personal_data": {
            "sealed": [_field(key, entry) for key, entry in sealed.items()],
            "plaintext": [_field(key, entry) for key, entry in PLAINTEXT_FIELDS.items()],
        },
        "recipients": [
            {"unit": u.id, "name": u.name, "kind": u.kind} for u in sorted(units, key=_by_id)
        ],
        "retention": {
            **{f"referral {status}": f"{days} days" for status, days in periods.days.items()},
            **extra_retention,
        },
        "transfers_to_third_countries": "none",
        "security_measures": list(SECURITY_MEASURES),
    }


def _by_id(unit: Any) -> str:
    return str(unit.id)


def _field(key: tuple[str, str], entry: FieldEntry) -> dict[str, Any]:
    return {"field": f"{key[0]}.{key[1]}", **asdict(entry), "subjects": list(entry.subjects)}


def markdown(record: Mapping[str, Any]) -> str:
    """The record as a readable document."""
    lines = [
        "# Record of processing activities (GDPR Art. 30)",
        "",
        f"Generated from the code and configuration at {record['generated_at']}.",
        "",
        f"**Controller:** {record['controller']}",
        "",
        "## Purposes",
        "",
        *_bullets(record["purposes"]),
        "",
        "## Legal bases (the `legal_basis` codes)",
        "",
        *_bullets(f"`{code}`: {text}" for code, text in record["legal_bases"].items()),
        "",
        "## Categories of data subjects",
        "",
        *_bullets(record["data_subjects"]),
        "",
        "## Categories of personal data",
        "",
        "Sealed (encrypted at rest):",
        "",
        "| field | data subjects | category | what |",
        "|---|---|---|---|",
        *_rows(record["personal_data"]["sealed"]),
        "",
        "Plaintext (coarse facts and who did what):",
        "",
        "| field | data subjects | category | what |",
        "|---|---|---|---|",
        *_rows(record["personal_data"]["plaintext"]),
        "",
        "## Recipients (the units)",
        "",
        "| unit | name | kind |",
        "|---|---|---|",
        *(f"| `{r['unit']}` | {_cell(r['name'])} | {r['kind']} |" for r in record["recipients"]),
        "",
        "## Retention periods (the settings in force)",
        "",
        *_bullets(f"{what}: {period}" for what, period in record["retention"].items()),
        "",
        "## Transfers to third countries",
        "",
        record["transfers_to_third_countries"],
        "",
        "## Security measures (Art. 32)",
        "",
        *_bullets(record["security_measures"]),
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A unit's name is an admin's text: it must not break the table."""
    return text.replace("|", "\\|").replace("\n", " ")


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"- {item}" for item in items]


def _rows(fields: Iterable[Mapping[str, Any]]) -> list[str]:
    return [
        f"| `{f['field']}` | {', '.join(f['subjects']) or '-'} | {f['category']} "
        f"| {f['description']} |"
        for f in fields
    ]
