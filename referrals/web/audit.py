"""The auditor's pages: the chain's state, event search, emergency accesses, access logs.

The same use cases as /api/v1/audit/* and /api/v1/referrals/<id>/access-log, audited the
same way.  Auditors see identifiers and codes, never case content.  The search filters
are not personal (who, which referral id, which action, outcome, dates), so the search
is a GET whose address can be bookmarked.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from referrals.audit.actions import AuditAction, Outcome
from referrals.auth.principal import Scope
from referrals.runtime import audit_public_keys
from referrals.services import audit_trail
from referrals.web import i18n
from referrals.web.pages import audited, caller, runtime, signed_in

bp = Blueprint("audit", __name__)

AUDIT = Scope.AUDIT_READ
PAGE_SIZE = 50
STOCKHOLM = ZoneInfo(i18n.TIMEZONE)


@bp.get("/")
@signed_in(AUDIT, audit=AuditAction.AUDIT_VERIFY)
def chain() -> str:
    with audited(AuditAction.AUDIT_VERIFY) as uow:
        rt = runtime()
        verification = audit_trail.verify(
            uow, caller(), audit_public_keys(rt), rt.freshness_limits()
        )
    with audited(AuditAction.AUDIT_CHECKPOINTS) as uow:
        checkpoints = audit_trail.checkpoints(uow, caller())["items"]
    newest = checkpoints[-1] if checkpoints else None
    return render_template("audit_chain.html", verification=verification, newest=newest)


@bp.get("/events")
@signed_in(AUDIT, audit=AuditAction.AUDIT_SEARCH)
def events() -> tuple[str, int] | str:
    where, values, errors = _filters(request.args)
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    if not errors:
        with audited(AuditAction.AUDIT_SEARCH) as uow:
            page = audit_trail.search(
                uow,
                caller(),
                where,
                limit=PAGE_SIZE,
                cursor=request.args.get("cursor") or None,
            )
    html = render_template(
        "audit_events.html",
        page=page,
        values=values,
        errors=errors,
        actions=[a.value for a in AuditAction],
        outcomes=[o.value for o in Outcome],
        query={k: v[0] for k, v in values.items() if v and v[0]},
    )
    return (html, 422) if errors else html


@bp.get("/break-glass")
@signed_in(AUDIT, audit=AuditAction.AUDIT_SEARCH)
def break_glass() -> str:
    with audited(AuditAction.AUDIT_SEARCH) as uow:
        page = audit_trail.search(
            uow,
            caller(),
            audit_trail.EventFilter(break_glass=True),
            limit=PAGE_SIZE,
            cursor=request.args.get("cursor") or None,
        )
    return render_template("audit_break_glass.html", page=page)


@bp.get("/referrals/<uuid:referral_id>")
@signed_in(AUDIT, audit=AuditAction.REFERRAL_ACCESS_LOG)
def access_log(referral_id: uuid.UUID) -> str:
    with audited(AuditAction.REFERRAL_ACCESS_LOG, referral=referral_id) as uow:
        log = audit_trail.access_log(uow, caller(), referral_id)
    return render_template("audit_access_log.html", referral_id=referral_id, items=log["items"])


def _filters(
    args: Any,
) -> tuple[audit_trail.EventFilter, dict[str, list[str]], dict[str, str]]:
    """The API's filters from the search form; dates are whole days in Stockholm."""
    values = {k: [args.get(k, "").strip()] for k in ("actor", "referral", "action", "outcome")}
    values |= {k: [args.get(k, "").strip()] for k in ("since", "until", "unverified")}
    errors: dict[str, str] = {}
    referral = None
    if values["referral"][0]:
        try:
            referral = uuid.UUID(values["referral"][0])
        except ValueError:
            errors["referral"] = _("Enter a referral id, like 0b9f4c2e-…")
    action = values["action"][0] or None
    if action is not None and action not in {a.value for a in AuditAction}:
        errors["action"] = _("Choose an action from the list")
    outcome = values["outcome"][0] or None
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        errors["outcome"] = _("Choose an outcome from the list")
    since = _day(values["since"][0], errors, "since")
    until = _day(values["until"][0], errors, "until")
    where = audit_trail.EventFilter(
        actor=values["actor"][0][:500] or None,
        referral=referral,
        action=action,
        outcome=outcome,
        since=since,
        until=until + timedelta(days=1) if until else None,
        unverified=values["unverified"][0] == "true",
    )
    return where, values, errors


def _day(raw: str, errors: dict[str, str], field: str) -> datetime | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        errors[field] = _("Enter a date as year-month-day, like 2026-12-01")
        return None
    return datetime.combine(day, time(0, 0), tzinfo=STOCKHOLM)
