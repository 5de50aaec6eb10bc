"""What templates may call: labels, dates in Stockholm time, the vocabularies."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _

from referrals.auth.principal import Principal, Role
from referrals.domain import labels
from referrals.domain.codes import (
    BreakGlassReason,
    Category,
    ConsentGiver,
    ConsentWithdrawal,
    LegalBasis,
    NoteVisibility,
    OutcomeCode,
    Priority,
    ReasonCode,
    RevealReason,
    Status,
)
from referrals.runtime import Runtime
from referrals.web import i18n

VOCABULARIES = {
    "BreakGlassReason": BreakGlassReason,
    "Category": Category,
    "ConsentGiver": ConsentGiver,
    "ConsentWithdrawal": ConsentWithdrawal,
    "LegalBasis": LegalBasis,
    "NoteVisibility": NoteVisibility,
    "OutcomeCode": OutcomeCode,
    "Priority": Priority,
    "ReasonCode": ReasonCode,
    "RevealReason": RevealReason,
    "Status": Status,
}


def role_name(role: str) -> str:
    names = {
        "youth_worker": _("Youth worker"),
        "caseworker": _("Caseworker"),
        "unit_lead": _("Unit lead"),
        "auditor": _("Auditor"),
        "admin": _("Administrator"),
    }
    return str(names.get(role, role))


def error_title(status: int) -> str:
    titles = {
        400: _("The form could not be sent"),
        403: _("You do not have access"),
        404: _("Page not found"),
        409: _("It could not be changed"),
        503: _("Sorry, the service is unavailable"),
    }
    return str(titles.get(status, _("Sorry, there is a problem with the service")))


def outcome_name(outcome: str) -> str:
    names = {"allowed": _("Allowed"), "denied": _("Denied"), "error": _("Error")}
    return str(names.get(outcome, outcome))


def _globals() -> dict[str, Any]:
    language = i18n.language()
    runtime = current_app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    settings = runtime.settings
    found = g.get("principal")
    signed_in = found if isinstance(found, Principal) else None
    return {
        "lang": language,
        "other_lang": "en" if language == "sv" else "sv",
        "here": request.path,
        "me": signed_in,
        "is_auditor": bool(signed_in and signed_in.has_role(Role.AUDITOR)),
        "is_youth_worker": bool(signed_in and signed_in.has_role(Role.YOUTH_WORKER)),
        "is_caseworker": bool(signed_in and signed_in.has_role(Role.CASEWORKER)),
        "when": i18n.when,
        "role_name": role_name,
        "outcome_name": outcome_name,
        "outcome_pairs": lambda outcomes: [(o, outcome_name(o)) for o in outcomes],
        "pairs": lambda codes: [(c, c) for c in codes],
        "error_title": error_title,
        "day": i18n.day,
        "label": lambda code, vocabulary: labels.label(code, VOCABULARIES[vocabulary], language),
        "choices": lambda vocabulary, only=None: [
            (code, text)
            for code, text in labels.choices(VOCABULARIES[vocabulary], language)
            if only is None or code in only
        ],
        "district": lambda code: labels.district(code, language),
        "deadline_days": {
            "urgent": settings.deadline_urgent_days,
            "normal": settings.deadline_normal_days,
        },
        "districts": [(code, labels.district(code, language)) for code in labels.DISTRICTS],
    }


def init_blueprint(web: Blueprint) -> None:
    # The pages' templates only: the API's own pages (/docs) get none of this.
    web.context_processor(_globals)
