"""Printable documents the API answers with: a person's data export (GDPR Art. 15).

Rendered by the app's Jinja environment (autoescaped) in the request's language (the
``lang`` cookie, else Accept-Language, else Swedish).  The document stands alone, to be
printed or saved and given to the person: its only style is inline, allowed by its
hash in the Content-Security-Policy, and it loads nothing and runs no script.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from flask import render_template
from flask_babel import gettext as _

from referrals.domain import labels
from referrals.domain.codes import Category, LegalBasis, OutcomeCode, Priority, ReasonCode, Status
from referrals.web import i18n

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;"
    "color:#0b0c0c;line-height:1.45}"
    "table{border-collapse:collapse;width:100%;margin:0 0 1.5rem}"
    "th,td{border:1px solid #505a5f;padding:.3rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f3f2f1}section{break-inside:avoid-page;margin-bottom:2.5rem}"
    "@media print{body{margin:0;max-width:none}}"
)


def access_label(action: str) -> str:
    """What a request did to the referral, in the reader's words."""
    match action:
        case "referral:read" | "referral:events" | "note:list":
            return str(_("Read"))
        case "referral:list":
            return str(_("Shown in a list"))
        case "referral:search":
            return str(_("Found by a search for the personal number"))
        case "referral:access-log":
            return str(_("Access log checked by an auditor"))
        case "referral:erase":
            return str(_("Erased"))
        case "privacy:subject-access":
            return str(_("Included in an export of your data"))
        case _ if action.startswith(("referral:", "note:")):
            # Created, edited, a transition such as accept, or a note written.
            return str(_("Written or changed"))
    return action


def content_security_policy() -> str:
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def subject_access(export: dict[str, Any]) -> str:
    language = i18n.language()
    return render_template(
        "subject_access.html",
        export=export,
        lang=language,
        style=STYLE,
        when=i18n.when,
        day=i18n.day,
        district=lambda code: labels.district(code, language),
        status=lambda code: labels.label(code, Status, language),
        priority=lambda code: labels.label(code, Priority, language),
        category=lambda code: labels.label(code, Category, language),
        basis=lambda code: labels.label(code, LegalBasis, language),
        outcome=lambda code: labels.label(code, OutcomeCode, language),
        reason=lambda code: labels.label(code, ReasonCode, language),
        access=access_label,
    )
