"""The youth worker's pages: new referral, my referrals, one referral.

Each page runs the use cases the matching API calls run, audited the same way (one
event per call); the form is checked by the API's schema and the same domain rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from referrals.api.schemas.referrals import SearchBody
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Role, Scope
from referrals.domain.codes import (
    Action,
    ConsentWithdrawal,
    NoteVisibility,
    ReasonCode,
    RevealReason,
)
from referrals.domain.errors import DomainError
from referrals.services import consent, disclosure, notes, referrals, timeline
from referrals.services.errors import ServiceError, Unprocessable
from referrals.services.uow import UnitOfWork
from referrals.web import forms
from referrals.web.pages import (
    audited,
    caller,
    current_principal,
    principal,
    signed_in,
    take_kept_form,
)
from referrals.web.signin import sign_in_url

bp = Blueprint("referrals", __name__)

READ, WRITE = Scope.REFERRALS_READ, Scope.REFERRALS_WRITE
PAGE_SIZE = 25
# Reasons a sender may give for cancelling its own referral.
CANCEL_REASONS = (
    ReasonCode.NO_LONGER_NEEDED,
    ReasonCode.DUPLICATE,
    ReasonCode.WRONG_SUBJECT,
    ReasonCode.DATA_ENTRY_ERROR,
    ReasonCode.OTHER,
)
BODY_KEYS = (
    "subject",
    "guardian",
    "categories",
    "priority",
    "legal_basis",
    "consent",
    "place_met",
    "narrative",
)


class FormInvalid(Unprocessable):
    """The form failed the API's schema; audited as the API's 422 would be."""

    def __init__(self, exc: ValidationError) -> None:
        super().__init__("the form has errors")
        self.validation = exc


def _form_errors(exc: Exception) -> dict[str, str] | None:
    """The field errors of a refusal the person can fix in the form, else None."""
    if isinstance(exc, FormInvalid):
        return forms.errors_of(exc.validation)
    if isinstance(exc, DomainError | ServiceError) and exc.field:
        return forms.errors_of(exc) or None
    return None


@bp.get("/")
def home() -> BaseResponse:
    found = current_principal()
    if found is None:
        return redirect(sign_in_url(request.path))
    if found.has_role(Role.AUDITOR):
        return redirect(url_for("web.audit.chain"))
    return redirect(url_for("web.referrals.mine"))


@bp.get("/<path:unknown>")
def not_found(unknown: str) -> BaseResponse:
    """Any other address under /app/: our own 404 page, not the API's problem+json."""
    abort(404)


@bp.get("/referrals")
@signed_in(READ, audit=AuditAction.REFERRAL_LIST)
def mine() -> str:
    cursor = request.args.get("cursor") or None
    with audited(AuditAction.REFERRAL_LIST) as uow:
        page = referrals.list_page(
            uow,
            caller(),
            status=None,
            priority=None,
            overdue=None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
    return render_template(
        "referrals.html",
        items=page.items,
        next_cursor=page.next_cursor,
        notice=session.pop("notice", None),
        may_open=principal().has_role(Role.YOUTH_WORKER),
    )


@bp.get("/referrals/new")
@signed_in(WRITE)
def new() -> str:
    kept = take_kept_form(request.path)
    return render_template("referral_form.html", values=kept or {}, errors={}, restored=bool(kept))


@bp.post("/referrals/new")
@signed_in(WRITE, audit=AuditAction.REFERRAL_CREATE, keep_form=True)
def create() -> BaseResponse | tuple[str, int]:
    submit = request.form.get("action") == "submit"
    body = forms.body_from_form(request.form, caller().now)
    try:
        with audited(AuditAction.REFERRAL_CREATE, success=201) as uow:
            view = referrals.create(uow, caller(), _checked(body), submit=submit)
    except (ServiceError, DomainError) as exc:
        errors = _form_errors(exc)
        if errors is None:
            raise
        values = request.form.to_dict(flat=False)
        return render_template("referral_form.html", values=values, errors=errors), 422
    _notice(view, submitted=submit)
    return redirect(url_for("web.referrals.show", referral_id=view["id"]))


@bp.get("/referrals/search")
@signed_in(READ)
def search_form() -> str:
    return render_template("search.html", values={}, errors={}, items=None)


@bp.post("/referrals/search")
@signed_in(READ, audit=AuditAction.REFERRAL_SEARCH)
def search() -> str | tuple[str, int]:
    """By personal number: a POST, so that the number is never in an address."""
    number = request.form.get("personal_number", "").strip()
    values = {"personal_number": [number]}
    try:
        with audited(AuditAction.REFERRAL_SEARCH) as uow:
            checked = _checked_search({"personal_number": number})
            items = referrals.search(uow, caller(), checked["personal_number"])
    except (ServiceError, DomainError) as exc:
        errors = _form_errors(exc)
        if errors is None:
            raise
        return render_template("search.html", values=values, errors=errors, items=None), 422
    return render_template("search.html", values=values, errors={}, items=items)


@bp.get("/referrals/<uuid:referral_id>")
@signed_in(READ, audit=AuditAction.REFERRAL_READ)
def show(referral_id: uuid.UUID) -> str:
    return _detail(referral_id)


def _detail(
    referral_id: uuid.UUID,
    *,
    values: dict[str, list[str]] | None = None,
    errors: dict[str, str] | None = None,
) -> str:
    ctx = caller()
    with audited(AuditAction.REFERRAL_READ, referral=referral_id) as uow:
        view = referrals.get(uow, ctx, referral_id)
    with audited(AuditAction.REFERRAL_EVENTS, referral=referral_id) as uow:
        events = timeline.events(uow, ctx, referral_id)
    with audited(AuditAction.NOTE_LIST, referral=referral_id) as uow:
        shared = notes.visible(uow, ctx, referral_id)
    return render_template(
        "referral.html",
        referral=view,
        events=events,
        notes=shared,
        values=values or {},
        errors=errors or {},
        cancel_reasons=CANCEL_REASONS,
        notice=session.pop("notice", None),
    )


@bp.post("/referrals/<uuid:referral_id>/notes")
@signed_in(WRITE, audit=AuditAction.NOTE_CREATE)
def add_note(referral_id: uuid.UUID) -> BaseResponse | tuple[str, int]:
    text = request.form.get("text", "").strip()
    visibility = request.form.get("visibility", NoteVisibility.SHARED.value)
    try:
        with audited(AuditAction.NOTE_CREATE, referral=referral_id, success=201) as uow:
            if not text or len(text) > 10_000:
                raise Unprocessable("a note needs text", field="text")
            if visibility not in {v.value for v in NoteVisibility}:
                raise Unprocessable("unknown visibility", field="visibility")
            notes.add(uow, caller(), referral_id, text=text, visibility=NoteVisibility(visibility))
    except (ServiceError, DomainError) as exc:
        errors = _form_errors(exc)
        if errors is None:
            raise
        values = request.form.to_dict(flat=False)
        return _detail(referral_id, values=values, errors=errors), 422
    session["notice"] = {"kind": "note_added"}
    return redirect(url_for("web.referrals.show", referral_id=referral_id) + "#notes")


@bp.post("/referrals/<uuid:referral_id>/cancel")
@signed_in(WRITE, audit=AuditAction.REFERRAL_CANCEL)
def cancel(referral_id: uuid.UUID) -> BaseResponse | tuple[str, int]:
    def perform(uow: UnitOfWork, reason: str) -> object:
        inputs: dict[str, Any] = {"reason_code": reason}
        return referrals.perform(uow, caller(), referral_id, Action.CANCEL, inputs, if_match=None)

    codes = {r.value for r in CANCEL_REASONS}
    return _reason_coded(referral_id, AuditAction.REFERRAL_CANCEL, codes, perform, "cancelled")


@bp.post("/referrals/<uuid:referral_id>/reveal")
@signed_in(WRITE, audit=AuditAction.REFERRAL_REVEAL)
def reveal(referral_id: uuid.UUID) -> BaseResponse | tuple[str, int]:
    """The receiving unit reveals the identity before deciding (two-phase disclosure)."""

    def perform(uow: UnitOfWork, reason: str) -> object:
        return disclosure.reveal(uow, caller(), referral_id, RevealReason(reason))

    codes = {r.value for r in RevealReason}
    return _reason_coded(referral_id, AuditAction.REFERRAL_REVEAL, codes, perform, "revealed")


@bp.post("/referrals/<uuid:referral_id>/withdraw-consent")
@signed_in(WRITE, audit=AuditAction.REFERRAL_WITHDRAW_CONSENT)
def withdraw_consent(referral_id: uuid.UUID) -> BaseResponse | tuple[str, int]:
    """The sender records that the consent was withdrawn."""

    def perform(uow: UnitOfWork, reason: str) -> object:
        return consent.withdraw(uow, caller(), referral_id, ConsentWithdrawal(reason))

    return _reason_coded(
        referral_id,
        AuditAction.REFERRAL_WITHDRAW_CONSENT,
        {r.value for r in ConsentWithdrawal},
        perform,
        "consent_withdrawn",
        missing="choose who withdrew it",
    )


def _reason_coded(
    referral_id: uuid.UUID,
    action: AuditAction,
    codes: set[str],
    perform: Callable[[UnitOfWork, str], object],
    notice: str,
    *,
    missing: str = "choose a reason",
) -> BaseResponse | tuple[str, int]:
    """A form whose one field is a reason code: checked, performed and audited in one unit
    of work; a refusal shows the page again with the field named (422)."""
    reason = request.form.get("reason_code", "")
    try:
        with audited(action, referral=referral_id) as uow:
            if reason not in codes:
                raise Unprocessable(missing, field="reason_code")
            perform(uow, reason)
    except (ServiceError, DomainError) as exc:
        errors = _form_errors(exc)
        if errors is None:
            raise
        return _detail(referral_id, values=request.form.to_dict(flat=False), errors=errors), 422
    session["notice"] = {"kind": notice}
    return redirect(url_for("web.referrals.show", referral_id=referral_id))


@bp.post("/referrals/<uuid:referral_id>/delete")
@signed_in(WRITE, audit=AuditAction.REFERRAL_DELETE)
def delete(referral_id: uuid.UUID) -> BaseResponse:
    with audited(AuditAction.REFERRAL_DELETE, referral=referral_id, success=204) as uow:
        referrals.delete_draft(uow, caller(), referral_id)
    session["notice"] = {"kind": "deleted"}
    return redirect(url_for("web.referrals.mine"))


@bp.get("/referrals/<uuid:referral_id>/edit")
@signed_in(WRITE, audit=AuditAction.REFERRAL_READ)
def edit(referral_id: uuid.UUID) -> str | BaseResponse:
    with audited(AuditAction.REFERRAL_READ, referral=referral_id) as uow:
        view = referrals.get(uow, caller(), referral_id)
    if view["status"] != "draft":
        return redirect(url_for("web.referrals.show", referral_id=referral_id))
    kept = take_kept_form(request.path)
    values = kept or forms.form_from_view(view)
    return render_template(
        "referral_form.html",
        values=values,
        errors={},
        restored=bool(kept),
        referral=view,
    )


@bp.post("/referrals/<uuid:referral_id>/edit")
@signed_in(WRITE, audit=AuditAction.REFERRAL_UPDATE, keep_form=True)
def update(referral_id: uuid.UUID) -> BaseResponse | tuple[str, int]:
    submit = request.form.get("action") == "submit"
    body = forms.body_from_form(request.form, caller().now)
    values = request.form.to_dict(flat=False)
    try:
        with audited(AuditAction.REFERRAL_UPDATE, referral=referral_id) as uow:
            patch = {key: body.get(key) for key in BODY_KEYS}
            view = referrals.update_draft(
                uow, caller(), referral_id, _checked(patch), if_match=_version()
            )
        # Saved: should submitting fail, the form comes back for the new version.
        values["version"] = [str(view["version"])]
        if submit:
            with audited(AuditAction.REFERRAL_SUBMIT, referral=referral_id) as uow:
                view = referrals.perform(
                    uow, caller(), referral_id, Action.SUBMIT, {}, if_match=None
                )
    except (ServiceError, DomainError) as exc:
        errors = _form_errors(exc)
        if errors is None:
            raise
        referral = {"id": referral_id}
        return render_template(
            "referral_form.html", values=values, errors=errors, referral=referral
        ), 422
    _notice(view, submitted=submit)
    return redirect(url_for("web.referrals.show", referral_id=referral_id))


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return forms.check(body)
    except ValidationError as exc:
        raise FormInvalid(exc) from None


def _checked_search(body: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = SearchBody().load(body)
    except ValidationError as exc:
        raise FormInvalid(exc) from None
    return loaded


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


def _notice(view: dict[str, Any], *, submitted: bool) -> None:
    duplicates = [str(d["id"]) for d in view.get("possible_duplicates") or []]
    session["notice"] = {
        "kind": "submitted" if submitted else "draft_saved",
        "unit": view.get("receiving_unit"),
        "duplicates": duplicates,
    }
