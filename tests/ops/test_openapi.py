"""The committed spec is what the code generates, and it is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from referrals import create_app
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
