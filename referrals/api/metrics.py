"""``GET /metrics``: Prometheus's text format, for the operator's Prometheus only.

Guarded by its own bearer token (REFERRALS_METRICS_TOKEN or REFERRALS_METRICS_TOKEN_FILE),
not by an OIDC access token: a scrape reads counts of codes, never a case, so it is not
audited; each refusal is counted instead (``referrals_metrics_refusals_total``), by the
closed set of reasons in ``referrals.metrics.access.Refusal``.  Without a configured
token the endpoint does not exist (404).
"""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from referrals.api.context import runtime
from referrals.api.problems import problem
from referrals.api.spec import problem_response
from referrals.metrics import access

blp = Blueprint("metrics", __name__, description="Operations")

EXPOSITION = {
    "description": "Prometheus text exposition format 0.0.4",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        security=[{"metricsToken": []}],
        responses={
            "200": EXPOSITION,
            "401": {**problem_response(401), "description": "No or a wrong metrics token"},
            "404": {**problem_response(404), "description": "Metrics are not enabled"},
        },
    )
    def get(self) -> Response:
        """Metrics for Prometheus (the metrics bearer token, not an access token)."""
        rt = runtime()
        refusal = access.check(rt.metrics_token, request.headers.get("Authorization"))
        if refusal is not None:
            rt.metrics.guard().refused(refusal.value)
            if refusal is access.Refusal.DISABLED:
                return problem(404)
            return problem(
                401,
                detail="This needs the metrics bearer token.",
                headers={"WWW-Authenticate": access.CHALLENGE},
            )
        body = generate_latest(rt.exposition())
        response = Response(body, mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4)
        response.headers["Cache-Control"] = "no-store"
        return response
