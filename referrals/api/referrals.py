"""HTTP views for referrals, their timeline and notes.  Parse, call one service, shape."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Response, request
from flask.views import MethodView
from marshmallow import RAISE

from referrals.api.context import BREAK_GLASS_HEADER, authenticated, caller, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.referrals import (
    ACTION_BODIES,
    AssignBody,
    EventList,
    ListArgs,
    NoteIn,
    NoteList,
    NoteOut,
    ReferralBody,
    ReferralCreate,
    ReferralList,
    ReferralOut,
    ReferralPage,
    RevealBody,
    SearchBody,
    WithdrawConsentBody,
)
from referrals.audit import actions as audit_actions
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.domain.codes import (
    Action,
    BreakGlassReason,
    ConsentWithdrawal,
    NoteVisibility,
    RevealReason,
)
from referrals.services import (
    assignment,
    consent,
    disclosure,
    idempotency,
    notes,
    referrals,
    timeline,
)
from referrals.services.errors import PreconditionRequired, Unprocessable

blp = Blueprint("referrals", __name__, url_prefix="/api/v1", description="Referrals")

READ, WRITE = Scope.REFERRALS_READ, Scope.REFERRALS_WRITE
_ETAG = re.compile(r'(?:W/)?"v(\d{1,12})"')
# Documented in the spec as written (ECMA-262); matched whole, with fullmatch.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_ERRORS = (401, 403, 404, 422)
_NO_STORE = {"Cache-Control": "no-store"}
BREAK_GLASS_PARAMETER = {
    "in": "header",
    "name": BREAK_GLASS_HEADER,
    "required": False,
    "schema": {"type": "string", "enum": [r.value for r in BreakGlassReason]},
    "description": "Emergency read of a referral outside the caller's unit (caseworkers): "
    "opens it to the caller for 30 minutes; every read is audited with the reason and "
    "listed for review (GET /api/v1/audit/events?break_glass=true).",
}


def _etag(view: dict[str, Any]) -> dict[str, str]:
    # Case content must not linger in shared or browser caches.
    return {"ETag": f'"v{view["version"]}"', **_NO_STORE}


def _if_match() -> int | None:
    """The version a client last saw.  ``*`` means "whatever it is now"."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    match = _ETAG.fullmatch(raw.strip())
    # An ETag we never issued cannot match the current one.
    return int(match.group(1)) if match else -1


@blp.route("/referrals")
class ReferralCollection(MethodView):
    @authenticated(READ, audit=AuditAction.REFERRAL_LIST)
    # webargs ignores unknown query parameters unless told; a typo must not drop a filter.
    @blp.arguments(ListArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, ReferralPage)
    @problems(blp, *_ERRORS)
    def get(self, **filters: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The caller's inbox (caseworkers) or outbox (youth workers), newest first."""
        with unit_of_work() as uow:
            page = referrals.list_page(
                uow,
                caller(),
                status=filters.get("status"),
                priority=filters.get("priority"),
                overdue=filters.get("overdue"),
                limit=filters["limit"],
                cursor=filters.get("cursor"),
            )
        return {"items": page.items, "next_cursor": page.next_cursor}, 200, _NO_STORE

    @authenticated(WRITE, audit=AuditAction.REFERRAL_CREATE, success=201)
    @blp.arguments(ReferralCreate)
    @blp.response(201, ReferralOut)
    @problems(blp, *_ERRORS, 409)
    @blp.doc(
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                "description": "Retrying with the same key and body returns the same referral.",
            }
        ]
    )
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Open a referral: a draft, or submitted at once with ``"submit": true``."""
        submit = body.pop("submit")
        key = request.headers.get("Idempotency-Key")
        with unit_of_work() as uow:
            if key is None:
                view = referrals.create(uow, caller(), body, submit=submit)
                replayed = False
            elif not _IDEMPOTENCY_KEY.fullmatch(key):
                raise Unprocessable(
                    "must be 1-200 visible ASCII characters", field="Idempotency-Key"
                )
            else:
                view, replayed = idempotency.create_once(
                    uow, caller(), body, submit=submit, key=key
                )
        headers = {**_etag(view), "Location": f"/api/v1/referrals/{view['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return view, 201, headers


@blp.route("/referrals/search")
class ReferralSearch(MethodView):
    @authenticated(READ, audit=AuditAction.REFERRAL_SEARCH)
    @blp.arguments(SearchBody)
    @blp.response(200, ReferralList)
    @problems(blp, *_ERRORS)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Find the referrals the caller may see for one personal number (exact match)."""
        with unit_of_work() as uow:
            items = referrals.search(uow, caller(), body["personal_number"])
        return {"items": items}, 200, _NO_STORE


@blp.route("/referrals/<uuid:referral_id>")
class ReferralItem(MethodView):
    @authenticated(READ, audit=AuditAction.REFERRAL_READ)
    @blp.doc(parameters=[BREAK_GLASS_PARAMETER])
    @blp.response(200, ReferralOut)
    @problems(blp, 401, 403, 404)
    def get(self, referral_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """One referral, with its ``ETag``."""
        with unit_of_work() as uow:
            view = referrals.get(uow, caller(), referral_id)
        return view, 200, _etag(view)

    @authenticated(WRITE, audit=AuditAction.REFERRAL_UPDATE)
    @blp.arguments(ReferralBody)
    @blp.response(200, ReferralOut)
    @problems(blp, *_ERRORS, 409, 412, 428)
    @blp.doc(
        parameters=[
            {"in": "header", "name": "If-Match", "required": True, "schema": {"type": "string"}}
        ]
    )
    def patch(
        self, patch: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Edit a draft (JSON merge patch: ``null`` removes a field).  Needs ``If-Match``."""
        if "If-Match" not in request.headers:
            raise PreconditionRequired("editing a draft needs If-Match with the current ETag")
        with unit_of_work() as uow:
            view = referrals.update_draft(uow, caller(), referral_id, patch, if_match=_if_match())
        return view, 200, _etag(view)

    @authenticated(WRITE, audit=AuditAction.REFERRAL_DELETE, success=204)
    @blp.response(204)
    @problems(blp, 401, 403, 404, 409)
    def delete(self, referral_id: uuid.UUID) -> Response:
        """Delete a draft."""
        with unit_of_work() as uow:
            referrals.delete_draft(uow, caller(), referral_id)
        return Response(status=204)


ACTION_SUMMARIES = {
    Action.SUBMIT: "Submit a draft: it is routed to a receiving unit (sender).",
    Action.ACCEPT: "Accept a requested referral (receiving unit).",
    Action.DECLINE: "Decline a requested referral, with a reason code (receiving unit).",
    Action.REDIRECT: "Send a requested referral to another receiving unit (receiving unit).",
    Action.CANCEL: "Cancel: the sender before acceptance, the receiver after.",
    Action.START: "Start work on an accepted referral (receiving unit).",
    Action.HOLD: "Put work on hold, with a reason code (receiving unit).",
    Action.RESUME: "Resume work that was on hold (receiving unit).",
    Action.COMPLETE: "Complete with an outcome code (receiving unit).",
    Action.FAIL: "Close as failed, with a reason code (receiving unit).",
    Action.MARK_ERROR: "Mark a referral as entered in error, with a reason code (either side).",
}


def _action_view(action: Action) -> Any:
    def view(
        body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        with unit_of_work() as uow:
            result = referrals.perform(
                uow, caller(), referral_id, action, body, if_match=_if_match()
            )
        return result, 200, _etag(result)

    view.__name__ = f"referral_{action.name.lower()}"
    view.__doc__ = ACTION_SUMMARIES[action]
    view = problems(blp, *_ERRORS, 409, 412)(view)
    view = blp.response(200, ReferralOut)(view)
    view = blp.arguments(ACTION_BODIES[action])(view)
    view = authenticated(WRITE, audit=audit_actions.for_transition(action))(view)
    return blp.route(
        f"/referrals/<uuid:referral_id>/{action.value}",
        methods=["POST"],
        endpoint=view.__name__,
    )(view)


for _action in Action:
    _action_view(_action)


@blp.route("/referrals/<uuid:referral_id>/reveal")
class ReferralReveal(MethodView):
    @authenticated(WRITE, audit=AuditAction.REFERRAL_REVEAL)
    @blp.arguments(RevealBody)
    @blp.response(200, ReferralOut)
    @problems(blp, *_ERRORS, 409)
    def post(
        self, body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Reveal the identity of a requested referral to the receiving unit before it
        decides (two-phase disclosure): with a reason code, for the whole unit, on the
        timeline (``reveal``) and in the audit trail.  409 once already disclosed."""
        with unit_of_work() as uow:
            view = disclosure.reveal(uow, caller(), referral_id, RevealReason(body["reason_code"]))
        return view, 200, _etag(view)


@blp.route("/referrals/<uuid:referral_id>/withdraw-consent")
class ReferralWithdrawConsent(MethodView):
    @authenticated(WRITE, audit=AuditAction.REFERRAL_WITHDRAW_CONSENT)
    @blp.arguments(WithdrawConsentBody)
    @blp.response(200, ReferralOut)
    @problems(blp, *_ERRORS, 409)
    def post(
        self, body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Record that the consent a submitted referral rests on was withdrawn (sender;
        legal basis ``consent`` only).  An open referral is closed as ``cancelled`` with
        reason ``consent_withdrawn``; a closed one keeps its status.  The receiving unit
        is told (webhook ``referral.consent_withdrawn``) and sees only the decision view
        from then on; the timeline shows ``withdraw_consent``.  409 for a draft (delete
        it instead), another legal basis, or a second withdrawal."""
        with unit_of_work() as uow:
            view = consent.withdraw(
                uow, caller(), referral_id, ConsentWithdrawal(body["reason_code"])
            )
        return view, 200, _etag(view)


@blp.route("/referrals/<uuid:referral_id>/assign")
class ReferralAssign(MethodView):
    @authenticated(WRITE, audit=AuditAction.REFERRAL_ASSIGN)
    @blp.arguments(AssignBody)
    @blp.response(200, ReferralOut)
    @problems(blp, *_ERRORS, 409, 412)
    def post(
        self, body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Take, hand over or release an open referral (receiving unit).

        A caseworker moves a referral that is theirs or no one's; a unit lead any of the
        unit's.  Optional ``If-Match``."""
        with unit_of_work() as uow:
            view = assignment.assign(
                uow, caller(), referral_id, body["assignee"], if_match=_if_match()
            )
        return view, 200, _etag(view)


@blp.route("/referrals/<uuid:referral_id>/events")
class ReferralEvents(MethodView):
    @authenticated(READ, audit=AuditAction.REFERRAL_EVENTS)
    @blp.doc(parameters=[BREAK_GLASS_PARAMETER])
    @blp.response(200, EventList)
    @problems(blp, 401, 403, 404)
    def get(self, referral_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The referral's timeline: every transition, who (by unit), when, why."""
        with unit_of_work() as uow:
            items = timeline.events(uow, caller(), referral_id)
        return {"items": items}, 200, _NO_STORE


@blp.route("/referrals/<uuid:referral_id>/notes")
class ReferralNotes(MethodView):
    @authenticated(READ, audit=AuditAction.NOTE_LIST)
    @blp.doc(parameters=[BREAK_GLASS_PARAMETER])
    @blp.response(200, NoteList)
    @problems(blp, 401, 403, 404)
    def get(self, referral_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Notes the caller's side may read: shared ones and its own side's internal ones."""
        with unit_of_work() as uow:
            items = notes.visible(uow, caller(), referral_id)
        return {"items": items}, 200, _NO_STORE

    @authenticated(WRITE, audit=AuditAction.NOTE_CREATE, success=201)
    @blp.arguments(NoteIn)
    @blp.response(201, NoteOut)
    @problems(blp, *_ERRORS)
    def post(
        self, body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Add a note; ``internal`` notes are never shown to the other side."""
        with unit_of_work() as uow:
            note = notes.add(
                uow,
                caller(),
                referral_id,
                text=body["text"],
                visibility=NoteVisibility(body["visibility"]),
            )
        return note, 201, _NO_STORE
