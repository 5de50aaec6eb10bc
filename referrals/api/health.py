"""Liveness and readiness for the orchestrator.  No authentication, no case data."""

from __future__ import annotations

import logging
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from referrals.api.context import runtime
from referrals.api.problems import problem
from referrals.api.spec import STATUS_OK, problem_response

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
            "200": STATUS_OK,
            "503": {**problem_response(503), "description": "The database is not reachable"},
        },
    )
    def get(self) -> Any:
        """The process can serve: the database answers."""
        try:
            runtime().database.ping()
        except SQLAlchemyError:
            log.warning("readiness check failed: database unreachable")
            return problem(503, detail="The database is not reachable.")
        return {"status": "ok"}
