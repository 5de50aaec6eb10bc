"""The referral form: fields named after the API body, checked by the API's own schema.

A field's ``name`` and ``id`` are its path in the JSON body with ``-`` for nesting
(``subject-personal_number``), so the page, the browser tests and the API agree on one
vocabulary.  The form is turned into the body the API would receive and loaded with the
same marshmallow schema; the use case then applies the same domain rules.  Nothing here
is a second copy of a rule: only the wording of the errors, per field, in the reader's
language.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from referrals.api.schemas.referrals import ReferralBody
from referrals.domain.errors import DomainError
from referrals.services.errors import ServiceError

SUBJECT = ("name", "personal_number", "birth_date", "phone", "district")
GUARDIAN = ("name", "phone")
TEXTS = ("place_met", "narrative")
CODES = ("priority", "legal_basis")
# The order of the error summary: the order of the fields on the page.
ORDER = (
    *(f"subject-{f}" for f in SUBJECT),
    *(f"guardian-{f}" for f in GUARDIAN),
    "categories",
    "priority",
    "legal_basis",
    "consent-given_by",
    "place_met",
    "narrative",
    "text",
    "reason_code",
    "personal_number",
)

Values = MultiDict[str, str]


def messages() -> dict[str, str]:
    """Each field's error, said once, the same in the summary and beside the field."""
    return {
        "subject-name": _("Enter the young person's name in 200 characters or fewer"),
        "subject-personal_number": _(
            "Enter a real personal identity number or coordination number, "
            "like 20121212-1212, or leave it empty"
        ),
        "subject-birth_date": _("Enter the date of birth as year-month-day, like 2010-03-31"),
        "subject-phone": _("Enter a phone number with digits only, like 070-123 45 67"),
        "subject-district": _("Choose a district from the list"),
        "guardian-name": _("Enter the guardian's name in 200 characters or fewer"),
        "guardian-phone": _("Enter a phone number with digits only, like 070-123 45 67"),
        "categories": _("Choose at least one concern"),
        "priority": _("Choose how urgent it is"),
        "legal_basis": _("Choose the legal basis for sending the referral"),
        "consent-given_by": _("Choose who gave consent"),
        "place_met": _("Describe the place in 500 characters or fewer"),
        "narrative": _("Describe what happened in 20,000 characters or fewer"),
        "text": _("Write the note, in 10,000 characters or fewer"),
        "reason_code": _("Choose a reason"),
        "personal_number": _(
            "Enter a real personal identity number or coordination number, like 20121212-1212"
        ),
    }


def body_from_form(form: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The API body this form stands for; an empty field is "not given"."""
    values: Values = form if isinstance(form, MultiDict) else MultiDict(form)
    body: dict[str, Any] = {}
    subject = _group(values, "subject", SUBJECT)
    if subject:
        body["subject"] = subject
    guardian = _group(values, "guardian", GUARDIAN)
    if guardian:
        body["guardian"] = guardian
    categories = [c for c in values.getlist("categories") if c]
    if categories:
        body["categories"] = categories
    for name in (*CODES, *TEXTS):
        value = values.get(name, "").strip()
        if value:
            body[name] = value
    given_by = values.get("consent-given_by", "").strip()
    if given_by:
        # Consent is recorded when the youth worker records it.
        body["consent"] = {"given_by": given_by, "given_at": now.isoformat()}
    return body


def check(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the API's schema loads it; ValidationError otherwise."""
    loaded: dict[str, Any] = ReferralBody().load(body)
    return loaded


def errors_of(exc: Exception) -> dict[str, str]:
    """Field id -> the message to show, for a schema, domain or service refusal."""
    fields: list[str] = []
    if isinstance(exc, ValidationError):
        fields = _paths(exc.messages)
    elif isinstance(exc, DomainError | ServiceError) and exc.field:
        fields = [exc.field.replace(".", "-")]
    known = messages()
    found: dict[str, str] = {}
    for field in fields:
        field = "consent-given_by" if field.startswith("consent") else field
        field = "categories" if field.startswith("categories") else field
        found[field] = known.get(field, _("Check this answer"))
    return dict(sorted(found.items(), key=lambda item: _position(item[0])))


def form_from_view(view: Mapping[str, Any]) -> dict[str, list[str]]:
    """A stored draft as form values, for the edit page."""
    values: dict[str, list[str]] = {}
    for group, names in (("subject", SUBJECT), ("guardian", GUARDIAN)):
        for name in names:
            value = (view.get(group) or {}).get(name)
            if value is not None:
                values[f"{group}-{name}"] = [str(value)]
    values["categories"] = list(view.get("categories") or [])
    for name in (*CODES, *TEXTS):
        if view.get(name) is not None:
            values[name] = [str(view[name])]
    consent = view.get("consent") or {}
    if consent.get("given_by"):
        values["consent-given_by"] = [consent["given_by"]]
    return values


def _group(values: Values, prefix: str, names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        value = values.get(f"{prefix}-{name}", "").strip()
        if value:
            found[name] = value
    return found


def _paths(messages: Any, prefix: str = "") -> list[str]:
    if not isinstance(messages, dict):
        return [prefix] if prefix else []
    paths = []
    for key, value in messages.items():
        path = f"{prefix}-{key}" if prefix and not str(key).isdigit() else prefix or str(key)
        paths.extend(_paths(value, path) if isinstance(value, dict) else [path])
    return paths


def _position(field: str) -> int:
    return ORDER.index(field) if field in ORDER else len(ORDER)
