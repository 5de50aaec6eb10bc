"""HTTP view for statistics without people (analysts)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from referrals.api.context import authenticated, caller, runtime, unit_of_work
from referrals.api.docs import problems
from referrals.api.inputs import Blueprint
from referrals.api.schemas.statistics import StatisticsArgs, StatisticsOut
from referrals.audit.actions import AuditAction
from referrals.auth.principal import Scope
from referrals.services import statistics

blp = Blueprint("statistics", __name__, url_prefix="/api/v1", description="Statistics")

_NO_STORE = {"Cache-Control": "no-store"}


@blp.route("/statistics")
class Statistics(MethodView):
    @authenticated(Scope.STATISTICS_READ, audit=AuditAction.STATISTICS_READ)
    @blp.arguments(StatisticsArgs, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, StatisticsOut)
    @problems(blp, 401, 403, 422)
    def get(
        self, by: tuple[str, ...], start: date | None = None, end: date | None = None
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Counts of submitted referrals by month, district, category, priority or outcome
        (one or two at a time), and time-to-decision percentiles, with every count under
        REFERRALS_STATISTICS_MIN_CELL withheld and enough others that no withheld count
        can be worked out from the totals.  No case content, no referral ids."""
        min_cell = runtime().settings.statistics_min_cell
        with unit_of_work() as uow:
            query = statistics.query_for(caller(), start, end, by)
            answer = statistics.report(uow, caller(), query, min_cell=min_cell)
        return answer, 200, _NO_STORE
