"""HTTP views for routing rules, the routing preview, and webhook deliveries (admin)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from referrals.api.context import authenticated, caller, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.referrals import ReferralBody
from referrals.api.schemas.routing import (
    DeliveryArgs,
    DeliveryOut,
    DeliveryPage,
    PreviewOut,
    RuleOut,
    RuleSetArgs,
    RuleSetOut,
    RuleSetVersionList,
)
from referrals.api.schemas.units import RuleBody
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.services import outbox, routing

blp = Blueprint("routing", __name__, url_prefix="/api/v1", description="Routing and webhooks")

ADMIN = Scope.ADMIN
NO_STORE = {"Cache-Control": "no-store"}


@blp.route("/routing-rules")
class RoutingRules(MethodView):
    @authenticated(ADMIN, audit=AuditAction.ROUTING_RULES_READ)
    @blp.arguments(RuleSetArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, RuleSetOut)
    @problems(blp, 401, 403, 404, 422)
    def get(self, version: int | None = None) -> dict[str, Any]:
        """The current rule set, in the order rules are tried (or ``?version=`` an older one)."""
        with unit_of_work() as uow:
            return routing.rules(uow, caller(), version)

    @authenticated(ADMIN, audit=AuditAction.ROUTING_RULE_CREATE, success=201)
    @blp.arguments(RuleBody)
    @blp.response(201, RuleOut)
    @problems(blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a rule; the result is a new rule-set version.

        Refused (422) when the unit is not a receiving unit, the position is taken, the
        rule could never match (an earlier rule matches all it would), or the set would
        not end in a catch-all (``"match": {}``)."""
        with unit_of_work() as uow:
            return routing.add_rule(uow, caller(), body)


@blp.route("/routing-rules/versions")
class RoutingRuleVersions(MethodView):
    @authenticated(ADMIN, audit=AuditAction.ROUTING_VERSIONS)
    @blp.response(200, RuleSetVersionList)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """Every rule-set version, newest first; none is ever deleted."""
        with unit_of_work() as uow:
            return {"items": routing.versions(uow, caller())}


@blp.route("/routing-rules/<uuid:rule_id>")
class RoutingRule(MethodView):
    @authenticated(ADMIN, audit=AuditAction.ROUTING_RULE_UPDATE)
    @blp.arguments(RuleBody)
    @blp.response(200, RuleOut)
    @problems(blp, 401, 403, 404, 409, 422)
    def put(self, body: dict[str, Any], rule_id: uuid.UUID) -> dict[str, Any]:
        """Replace a rule of the current set (same id), making a new rule-set version."""
        with unit_of_work() as uow:
            return routing.replace_rule(uow, caller(), str(rule_id), body)

    @authenticated(ADMIN, audit=AuditAction.ROUTING_RULE_DELETE, success=204)
    @blp.response(204)
    @problems(blp, 401, 403, 404, 409, 422)
    def delete(self, rule_id: uuid.UUID) -> None:
        """Remove a rule, making a new rule-set version; the catch-all cannot go."""
        with unit_of_work() as uow:
            routing.delete_rule(uow, caller(), str(rule_id))


@blp.route("/routing/preview")
class RoutingPreview(MethodView):
    @authenticated(ADMIN, Scope.REFERRALS_WRITE, audit=AuditAction.ROUTING_PREVIEW)
    @blp.arguments(ReferralBody)
    @blp.response(200, PreviewOut)
    @problems(blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Where a referral with this body would be routed, and why: nothing is stored.

        Routing looks only at the district, the age (from the birth date or personal
        number), the categories and the priority; send no more than those."""
        with unit_of_work() as uow:
            # The explanation holds the age the body's birth date gives: not for caches.
            return routing.preview(uow, caller(), body), 200, NO_STORE


@blp.route("/admin/deliveries")
class Deliveries(MethodView):
    @authenticated(ADMIN, audit=AuditAction.DELIVERY_LIST)
    @blp.arguments(DeliveryArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, DeliveryPage)
    @problems(blp, 401, 403, 422)
    def get(self, **args: Any) -> dict[str, Any]:
        """Webhook deliveries, oldest first; ``?state=dead`` is the dead-letter queue."""
        with unit_of_work() as uow:
            items, next_cursor = outbox.list_page(
                uow,
                caller(),
                state=args.get("state"),
                unit=args.get("unit"),
                limit=args["limit"],
                cursor=args.get("cursor"),
            )
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/admin/deliveries/<uuid:delivery_id>/replay")
class DeliveryReplay(MethodView):
    @authenticated(ADMIN, audit=AuditAction.DELIVERY_REPLAY)
    @blp.response(200, DeliveryOut)
    @problems(blp, 401, 403, 404, 409)
    def post(self, delivery_id: uuid.UUID) -> dict[str, Any]:
        """Send a dead or skipped delivery again, with the same ``webhook-id``."""
        with unit_of_work() as uow:
            return outbox.replay(uow, caller(), delivery_id)
