"""HTTP views for auditors: the trail, a referral's access log, chain verification."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from referrals.api.context import authenticated, caller, runtime, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.audit import (
    AuditEventArgs,
    AuditEventList,
    AuditEventPage,
    CheckpointList,
    VerificationOut,
)
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.runtime import audit_public_keys
from referrals.services import audit_trail

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit trail")

AUDIT = Scope.AUDIT_READ
_NO_STORE = {"Cache-Control": "no-store"}


@blp.route("/audit/events")
class AuditEvents(MethodView):
    @authenticated(AUDIT, audit=AuditAction.AUDIT_SEARCH)
    @blp.arguments(AuditEventArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, AuditEventPage)
    @problems(blp, 401, 403, 422)
    def get(self, **args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Search the trail by actor, referral, action, outcome and time; newest first."""
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        with unit_of_work() as uow:
            page = audit_trail.search(
                uow, caller(), audit_trail.EventFilter(**args), limit=limit, cursor=cursor
            )
        return page, 200, _NO_STORE


@blp.route("/referrals/<uuid:referral_id>/access-log")
class AccessLog(MethodView):
    @authenticated(AUDIT, audit=AuditAction.REFERRAL_ACCESS_LOG)
    @blp.response(200, AuditEventList)
    @problems(blp, 401, 403)
    def get(self, referral_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Who accessed this referral, when, and with what outcome (oldest first)."""
        with unit_of_work() as uow:
            log = audit_trail.access_log(uow, caller(), referral_id)
        return log, 200, _NO_STORE


@blp.route("/audit/verify")
class AuditVerify(MethodView):
    @authenticated(AUDIT, audit=AuditAction.AUDIT_VERIFY)
    @blp.response(200, VerificationOut)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """Recompute the hash chain and checkpoints; name the first altered sequence number.

        ``status`` is "failed" when the chain is not intact, "behind" when it is intact but
        events wait for their seal (or sealed events for a checkpoint) longer than allowed:
        the sealer is stalled or overloaded."""
        with unit_of_work() as uow:
            rt = runtime()
            return audit_trail.verify(uow, caller(), audit_public_keys(rt), rt.freshness_limits())


@blp.route("/audit/checkpoints")
class AuditCheckpoints(MethodView):
    @authenticated(AUDIT, audit=AuditAction.AUDIT_CHECKPOINTS)
    @blp.response(200, CheckpointList)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """The signed checkpoints of the chain head, oldest first."""
        with unit_of_work() as uow:
            return audit_trail.checkpoints(uow, caller())
