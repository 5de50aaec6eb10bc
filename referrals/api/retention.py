"""HTTP views for retention: legal holds and the retention report.

Privacy officers (scope ``privacy``) and auditors (scope ``audit:read``) place and release
holds and read the report; none of it carries case content."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import RAISE

from referrals.api.context import authenticated, caller, runtime, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.retention import (
    LegalHoldIn,
    LegalHoldOut,
    RetentionArgs,
    RetentionReport,
)
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.domain.codes import LegalHoldReason
from referrals.services import retention

blp = Blueprint("retention", __name__, url_prefix="/api/v1", description="Retention")

PRIVACY = (Scope.PRIVACY, Scope.AUDIT_READ)
_NO_STORE = {"Cache-Control": "no-store"}


@blp.route("/referrals/<uuid:referral_id>/legal-hold")
class LegalHold(MethodView):
    @authenticated(*PRIVACY, audit=AuditAction.REFERRAL_LEGAL_HOLD)
    @blp.arguments(LegalHoldIn)
    @blp.response(200, LegalHoldOut)
    @problems(blp, 401, 403, 404, 409, 422)
    def put(
        self, body: dict[str, Any], referral_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Place a legal hold: retention erasure, and every other erasure, stops until it
        is released.  A hold with another reason code replaces the active one."""
        with unit_of_work() as uow:
            hold = retention.place_hold(
                uow, caller(), referral_id, LegalHoldReason(body["reason_code"])
            )
        return hold, 200, _NO_STORE

    @authenticated(*PRIVACY, audit=AuditAction.REFERRAL_LEGAL_HOLD_RELEASE, success=204)
    @blp.response(204)
    @problems(blp, 401, 403, 404, 409)
    def delete(self, referral_id: uuid.UUID) -> Response:
        """Release the legal hold: the referral is erased once its period has ended."""
        with unit_of_work() as uow:
            retention.release_hold(uow, caller(), referral_id)
        return Response(status=204)


@blp.route("/privacy/retention")
class RetentionOverview(MethodView):
    @authenticated(*PRIVACY, audit=AuditAction.PRIVACY_RETENTION)
    @blp.arguments(RetentionArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, RetentionReport)
    @problems(blp, 401, 403, 422)
    def get(self, days: int) -> tuple[dict[str, Any], int, dict[str, str]]:
        """What will be erased within ``days`` (and what is already due), and what is
        held: ids, statuses, codes and dates."""
        with unit_of_work() as uow:
            report = retention.report(uow, caller(), runtime().retention_policy(), days)
        return report, 200, _NO_STORE
