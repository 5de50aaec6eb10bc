"""HTTP views for units (administered by admins, readable by every role)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from referrals.api.context import authenticated, caller, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.units import (
    ReassignBody,
    ReassignOut,
    UnitCreate,
    UnitList,
    UnitOut,
    UnitReplace,
)
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.services import assignment, units

# The directory is not case content: any scope of this API may read it.
ANY_SCOPE = tuple(Scope)
# An answer may carry a new webhook signing secret: no cache may keep it.
NO_STORE = {"Cache-Control": "no-store"}

blp = Blueprint("units", __name__, url_prefix="/api/v1", description="Units")


@blp.route("/units")
class UnitCollection(MethodView):
    @authenticated(*ANY_SCOPE, audit=AuditAction.UNIT_LIST)
    @blp.response(200, UnitList)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """The unit directory."""
        with unit_of_work() as uow:
            return {"items": units.list_all(uow, caller())}

    @authenticated(Scope.ADMIN, audit=AuditAction.UNIT_CREATE, success=201)
    @blp.arguments(UnitCreate)
    @blp.response(201, UnitOut)
    @problems(blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Register a unit (admin)."""
        with unit_of_work() as uow:
            return units.create(uow, caller(), body), 201, NO_STORE


@blp.route("/units/<slug:unit_id>")
class UnitItem(MethodView):
    @authenticated(*ANY_SCOPE, audit=AuditAction.UNIT_READ)
    @blp.response(200, UnitOut)
    @problems(blp, 401, 403, 404)
    def get(self, unit_id: str) -> dict[str, Any]:
        """One unit."""
        with unit_of_work() as uow:
            return units.get(uow, caller(), unit_id)

    @authenticated(Scope.ADMIN, audit=AuditAction.UNIT_UPDATE)
    @blp.arguments(UnitReplace)
    @blp.response(200, UnitOut)
    @problems(blp, 401, 403, 404, 409, 422)
    def put(self, body: dict[str, Any], unit_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Replace a unit's name, kind, districts and webhook (admin).

        Setting a webhook_url where the unit has no signing secret, or
        ``rotate_webhook_secret``, issues a new secret: it is in this answer only."""
        with unit_of_work() as uow:
            return units.replace(uow, caller(), unit_id, body), 200, NO_STORE


@blp.route("/units/<slug:unit_id>/reassign")
class UnitReassign(MethodView):
    @authenticated(Scope.REFERRALS_WRITE, audit=AuditAction.UNIT_REASSIGN)
    @blp.arguments(ReassignBody)
    @blp.response(200, ReassignOut)
    @problems(blp, 401, 403, 404, 422)
    def post(
        self, body: dict[str, Any], unit_id: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Move every open referral of one staff member to another (the unit's lead).

        One request, one audit event naming every referral moved, one timeline event per
        referral.  ``dry_run`` lists the ids that would move and changes nothing."""
        with unit_of_work() as uow:
            done = assignment.reassign(
                uow,
                caller(),
                unit_id,
                from_subject=body["from_"],
                to_subject=body["to"],
                dry_run=body["dry_run"],
            )
        answer = {
            "unit": done.unit,
            "from_": done.from_subject,
            "to": done.to_subject,
            "dry_run": done.dry_run,
            "count": len(done.referrals),
            "referrals": done.referrals,
        }
        return answer, 200, NO_STORE
