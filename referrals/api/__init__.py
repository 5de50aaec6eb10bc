"""The HTTP layer: flask-smorest blueprints, schemas and the problem+json error shape."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from referrals.api import audit, docs, health, inputs, paths, problems, referrals, routing, units
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


def _assign_request_id() -> None:
    # Our own id, never the client's: it keys audit events, so it must be unique.
    g.request_id = uuid.uuid4().hex
    g.started = time.perf_counter()


def _return_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    access_log.info(
        "request",
        extra={
            "request_id": g.get("request_id"),
            "method": request.method,
            # The route template, never the URL: no ids, no query string.
            "route": request.url_rule.rule if request.url_rule else "(no route)",
            "status": response.status_code,
            "latency_ms": round(
                (time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2
            ),
        },
    )
    return response


def openapi_config() -> dict[str, Any]:
    return {
        "API_TITLE": "referrals",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Privacy-first case management for youth-at-risk referrals.",
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "security": [{"bearerAuth": []}],
            "webhooks": docs.webhooks(),
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    }


def init_app(app: Flask) -> ReferralsApi:
    app.config.update(openapi_config())
    app.before_request(_assign_request_id)
    app.after_request(_return_request_id)
    inputs.init_app(app)
    api = ReferralsApi(app, spec_kwargs={"extra_plugins": [ProblemResponses()]})
    paths.init_app(app, api)
    for module in (health, referrals, units, routing, audit):
        api.register_blueprint(module.blp)
    return api
