"""Application logs: one JSON line per request, route templates, no personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from referrals.logs import JsonFormatter

NAME, NUMBER = "Loggy Canarysson", "201003142385"


def test_one_json_line_per_request_without_personal_data_or_tokens(
    client: FlaskClient, dev_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    token = dev_token("youth_worker", "ungdomsjouren")
    headers = {"Authorization": f"Bearer {token}"}
    caplog.set_level(logging.DEBUG)
    created = client.post(
        "/api/v1/referrals",
        json={"subject": {"name": NAME, "personal_number": NUMBER}, "categories": ["drugs"]},
        headers=headers,
    )
    rid = created.json["id"]
    client.get(f"/api/v1/referrals/{rid}?unknown=1", headers=headers)
    client.post("/api/v1/referrals/search", json={"personal_number": NUMBER}, headers=headers)
    client.get("/api/v1/referrals", headers={"Authorization": "Bearer not-a-token"})

    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    requests = [line for line in lines if line["logger"] == "referrals.access"]
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/api/v1/referrals", 201),
        ("GET", "/api/v1/referrals/<uuid:referral_id>", 200),
        ("POST", "/api/v1/referrals/search", 200),
        ("GET", "/api/v1/referrals", 401),
    ]
    assert requests[0]["request_id"] == created.headers["X-Request-ID"]
    assert all(isinstance(r["latency_ms"], float) for r in requests)
    everything = "\n".join(formatter.format(r) for r in caplog.records)
    for secret in (NAME, NUMBER, NUMBER[2:], token, "not-a-token", rid):
        assert secret not in everything


def test_fields_outside_the_allow_list_never_reach_a_line() -> None:
    record = logging.LogRecord("referrals.x", logging.INFO, __file__, 1, "msg %s", (NAME,), None)
    record.body = {"name": NAME}
    record.route = "/api/v1/units"
    line = json.loads(JsonFormatter().format(record))
    assert line == {
        "time": line["time"],
        "level": "INFO",
        "logger": "referrals.x",
        "message": "msg %s",
        "route": "/api/v1/units",
    }
