"""The committed spec is what the code generates, and it is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import ValidationError
from openapi_spec_validator import validate

from referrals import create_app
from referrals.api.referrals import IDEMPOTENCY_KEY_PATTERN
from referrals.api.schemas.units import RuleBody
from referrals.cli import render_spec
from referrals.config import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


@pytest.fixture(scope="module")
def spec_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(Settings(instance_path=tmp_path_factory.mktemp("spec")))


def test_committed_spec_matches_the_code(spec_app: Flask) -> None:
    assert COMMITTED.read_text() == render_spec(spec_app), (
        "openapi/openapi.json is stale: run `referrals openapi write` and commit it"
    )


def test_spec_is_valid_openapi_31() -> None:
    spec = json.loads(COMMITTED.read_text())
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_api_operation_requires_a_bearer_token() -> None:
    spec = json.loads(COMMITTED.read_text())
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    api = [(p, m, op) for p, m, op in operations if p.startswith("/api/v1/")]
    assert len(api) >= 20
    for path, method, op in api:
        assert op.get("security"), f"{method.upper()} {path} documents no security"
        assert "401" in op["responses"], f"{method.upper()} {path} documents no 401"
    public = {p for p, _m, op in operations if op.get("security") == []}
    assert public == {"/healthz", "/readyz"}


def test_errors_are_documented_as_problem_details() -> None:
    spec = json.loads(COMMITTED.read_text())
    default = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(default) == ["application/problem+json"]
    problem = spec["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_patterns_are_ecma_262_anchored_and_bounded() -> None:
    """OpenAPI 3.1 patterns are ECMA-262: ``\\Z`` is no anchor there (it matches "Z")."""
    patterns = _patterns(json.loads(COMMITTED.read_text()))
    assert len(patterns) >= 3
    for pattern in patterns:
        assert pattern.startswith("^"), pattern
        assert pattern.endswith("$"), pattern
        assert not re.search(r"\\[AZz]", pattern), pattern
        # Bounded: every repetition has an upper limit.
        assert not re.search(r"(?<!\\)[*+]|\{\d+,\}", pattern), pattern


def test_every_status_the_service_answers_is_documented() -> None:
    spec = json.loads(COMMITTED.read_text())
    for path, method, op in _operations(spec):
        name = f"{method.upper()} {path}"
        documented = set(op["responses"])
        # Refused URL or header text, unreadable JSON.
        assert {"400", "422"} <= documented, name
        if path.startswith("/api/v1/"):
            assert "503" in documented, name  # audit trail or database unavailable
            if "{" in path:
                assert "404" in documented, name
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= documented, name
    for path in ("/healthz", "/readyz"):
        ok = spec["paths"][path]["get"]["responses"]["200"]
        assert "application/json" in ok["content"], path
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    assert "409" in spec["paths"]["/api/v1/units/{unit_id}"]["put"]["responses"]


def test_a_body_is_required_exactly_when_an_empty_one_is_refused(spec_app: Flask) -> None:
    spec = json.loads(COMMITTED.read_text())
    schemas = spec["components"]["schemas"]
    for path, method, op in _operations(spec):
        body = op.get("requestBody")
        if body is None:
            continue
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        has_required = bool(schemas[ref].get("required"))
        assert body["required"] is has_required, f"{method.upper()} {path}"


def test_path_ids_are_as_exact_as_the_ids_they_name() -> None:
    spec = json.loads(COMMITTED.read_text())
    rule = spec["paths"]["/api/v1/routing-rules/{rule_id}"]["parameters"][0]["schema"]
    unit = spec["paths"]["/api/v1/units/{unit_id}"]["parameters"][0]["schema"]
    assert rule == {"type": "string", "format": "uuid"}
    # "versions" is not a rule id: /routing-rules/versions is one operation only.
    assert unit["pattern"] == "^[a-z0-9][a-z0-9-]{0,63}$"
    assert unit["maxLength"] == 64


def test_the_idempotency_key_rule_is_in_the_spec() -> None:
    spec = json.loads(COMMITTED.read_text())
    parameters = spec["paths"]["/api/v1/referrals"]["post"]["parameters"]
    (key,) = [p for p in parameters if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert key["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert re.fullmatch(IDEMPOTENCY_KEY_PATTERN, "retry-7f3a")
    assert not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, "has space")
    assert not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, "k" * 201)


def test_integer_fields_of_bodies_are_strict() -> None:
    """17.9 for a position is refused, not truncated to 17."""
    with pytest.raises(ValidationError) as refused:
        RuleBody().load({"position": 17.9, "unit": "intake"})
    assert "position" in refused.value.messages
