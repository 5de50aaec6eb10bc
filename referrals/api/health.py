"""Liveness and readiness for the orchestrator.  No authentication, no case data."""

from __future__ import annotations

import logging
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from referrals.api.context import runtime
from referrals.api.problems import problem
from referrals.api.schemas.health import ReadinessOut
from referrals.api.spec import STATUS_OK, problem_response
from referrals.services import health

blp = Blueprint("operations", __name__, description="Operations")
log = logging.getLogger(__name__)


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[], responses={"200": STATUS_OK})
    def get(self) -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(
        security=[],
        responses={
            "503": {**problem_response(503), "description": "The database is not reachable"},
        },
    )
    @blp.response(200, ReadinessOut)
    def get(self) -> Any:
        """The process can serve: the database answers.

        ``audit_sealer`` is "behind" when audit events wait for their seal or checkpoint
        longer than allowed; that alone does not fail readiness (a deployment-wide fault,
        not this instance's: alert on it)."""
        rt = runtime()
        try:
            return health.readiness(rt.database, rt.clock(), rt.freshness_limits())
        except SQLAlchemyError:
            log.warning("readiness check failed: database unreachable")
            return problem(503, detail="The database is not reachable.")
