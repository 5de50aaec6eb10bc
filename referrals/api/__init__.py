"""The HTTP layer: flask-smorest blueprints, schemas and the problem+json error shape."""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from referrals import logs
from referrals.api import (
    audit,
    context,
    docs,
    health,
    inputs,
    metrics,
    paths,
    problems,
    referrals,
    retention,
    routing,
    statistics,
    subject_access,
    units,
    viewer,
)
from referrals.api.schemas.common import ProblemSchema
from referrals.api.spec import ProblemResponses

API_VERSION = "1.0.0"


class ReferralsApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with our error handling instead of its JSON error shape."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        problems.init_app(self._app)

    def _register_responses(self) -> None:
        # The documented default error is RFC 9457, as the handlers above produce.
        response = {"description": "Problem details (RFC 9457)", "schema": ProblemSchema}
        prepare_response(response, self.spec, problems.MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


access_log = logging.getLogger("referrals.access")


# A proxy's request id is joined to ours only if it is a short token: no spaces, quotes or
# control characters that could forge or break a log line, and short enough that ours
# (it, "~", 24 hex digits) fits the audit trail's 64-character column.  A UUID fits.
PROXY_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,36}")


def request_ids(proxy_header: str | None) -> tuple[str, str | None]:
    """Our request id and the proxy's (``None`` when absent or not a valid token).

    Ours is always unique: it keys audit events.  With a valid proxy id it is that id, a
    ``~`` (never part of one) and 96 random bits, so the audit row of a request a proxy
    logged is found by the prefix ``<proxy id>~``.  An invalid header is ignored, never
    logged: it is the client's text, and refusing the request would punish the wrong party.
    """
    if proxy_header is not None and PROXY_REQUEST_ID.fullmatch(proxy_header):
        return f"{proxy_header}~{secrets.token_hex(12)}", proxy_header
    return uuid.uuid4().hex, None


def _assign_request_id() -> None:
    g.request_id, g.proxy_request_id = request_ids(request.headers.get("X-Request-ID"))
    g.started = time.perf_counter()
    g.log_ids = logs.bind_request(g.request_id, g.proxy_request_id)
    # For gunicorn's access line, which is written after the response, outside Flask.
    request.environ[logs.ENVIRON_REQUEST_ID] = g.request_id
    if g.proxy_request_id is not None:
        request.environ[logs.ENVIRON_PROXY_REQUEST_ID] = g.proxy_request_id


def _unbind_request_ids(_exc: BaseException | None) -> None:
    token = g.pop("log_ids", None)
    if token is not None:
        logs.unbind_request(token)


def _return_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    # The route template, never the URL: no ids, no query string.
    route = request.url_rule.rule if request.url_rule else "(no route)"
    request.environ[logs.ENVIRON_ROUTE] = route
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    context.runtime().metrics.http().observe(request.method, route, response.status_code, seconds)
    access_log.info(
        "request",
        extra={
            "request_id": g.get("request_id"),
            **({"proxy_request_id": g.proxy_request_id} if g.get("proxy_request_id") else {}),
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "latency_ms": round(seconds * 1000, 2),
        },
    )
    return response


DISCLOSURE_DESCRIPTION = (
    "**Two-phase disclosure** (`REFERRALS_DISCLOSURE_POLICY`). Under `on_accept` (the "
    "default), until the receiving unit accepts a referral its caseworkers see what they "
    "need to decide — priority, categories, age in years, district, legal basis, consent, "
    "sending unit, deadline — and not the identity (name, personal number, birth date, "
    "phone, guardian), the narrative, the place met, or the free text of other units' "
    "notes and timeline reasons; every referral view says which it is (`disclosure`: "
    "`decision` or `full`). Accepting discloses the rest to the unit; so does "
    "`POST /referrals/{id}/reveal` with a reason code, for the whole unit, on the timeline "
    "and in the audit trail. A caseworker's search by personal number finds only "
    "referrals disclosed to them. Under `on_receipt` the receiving unit sees everything "
    "from submission. Declined and redirected referrals never disclosed the identity to "
    "that unit unless it revealed it; a redirect discloses nothing to the new unit."
)


def openapi_config(disclosure_policy: str = "on_accept") -> dict[str, Any]:
    return {
        "API_TITLE": "referrals",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Privacy-first case management for youth-at-risk referrals.\n\n"
                + DISCLOSURE_DESCRIPTION
                + f" This deployment: `{disclosure_policy}`.",
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "security": [{"bearerAuth": []}],
            "webhooks": docs.webhooks(),
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    # GET /metrics: REFERRALS_METRICS_TOKEN, not an access token.
                    "metricsToken": {"type": "http", "scheme": "bearer"},
                }
            },
        },
    }


def init_app(app: Flask) -> ReferralsApi:
    app.config.update(openapi_config(app.extensions["referrals"].settings.disclosure_policy))
    app.before_request(_assign_request_id)
    app.teardown_request(_unbind_request_ids)
    app.after_request(_return_request_id)
    inputs.init_app(app)
    api = ReferralsApi(app, spec_kwargs={"extra_plugins": [ProblemResponses()]})
    paths.init_app(app, api)
    for module in (
        health,
        metrics,
        referrals,
        units,
        routing,
        audit,
        retention,
        subject_access,
        statistics,
    ):
        api.register_blueprint(module.blp)
    # The API viewer is not part of the API: it stays out of the spec.
    app.register_blueprint(viewer.blueprint())
    return api
