"""Every status the service really answers, documented on every operation it can come from.

Some problems come from layers every operation shares rather than from the view: the URL and
header checks (``inputs``), the JSON body parser, the media-type check and the audit
recorder (``context.authenticated``), the router.  Writing them into each view's decorator
stack would be easy to forget on the next view; this apispec plugin adds them as the spec is
built, so an API fuzzer finds no answer the spec does not name.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apispec import BasePlugin

from referrals.api.problems import MEDIA_TYPE

API_PREFIX = "/api/v1/"
BODY_METHODS = {"post", "put", "patch"}

# A URL, query value or header the service reads that is not text it can keep (400/422);
# the database or the audit trail unavailable, nothing done (503).
EVERY_API_OPERATION = (400, 422, 503)
# Unreadable JSON (400), too large (413), not application/json (415).
WITH_A_BODY = (400, 413, 415, 422)
# A path segment of the wrong shape names nothing.
WITH_PATH_PARAMETERS = (404,)


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def statuses(path: str, method: str) -> set[int]:
    found: set[int] = set()
    if path.startswith(API_PREFIX):
        found.update(EVERY_API_OPERATION)
        if "{" in path:
            found.update(WITH_PATH_PARAMETERS)
        if method in BODY_METHODS:
            found.update(WITH_A_BODY)
    # Every URL passes the same text check, operations outside the API too.
    found.update({400, 422})
    return found


class ProblemResponses(BasePlugin):
    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses(path or "", method)):
                if status not in responses and str(status) not in responses:
                    responses[str(status)] = problem_response(status)


# /healthz and /readyz answer a bare status object (no schema class: they serialise nothing).
STATUS_OK = {
    "description": "OK",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok"]}},
            }
        }
    },
}
