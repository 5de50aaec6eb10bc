"""Application logs: one JSON line per request, route templates, no personal data."""

from __future__ import annotations

import json
import logging
import re
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


@pytest.mark.parametrize(
    ("header", "joined"),
    [
        ("3f2a9c1e-7b44-4d0e-9a51-0c6f1b2d8e77", True),  # a UUID, as most proxies send
        ("a", True),
        ("edge-1.eu:42", True),
        ("x" * 36, True),
        ("x" * 37, False),
        ("", False),
        (f"id {NUMBER}", False),
        ("id\tforged", False),
        ('"quoted"', False),
        ("a~b", False),  # "~" separates the proxy's id from ours
        ("räksmörgås", False),
    ],
)
def test_a_proxy_request_id_is_joined_only_when_a_short_token(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, header: str, joined: bool
) -> None:
    caplog.set_level(logging.INFO)
    response = client.get("/healthz", headers={"X-Request-ID": header})
    ours = response.headers["X-Request-ID"]
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert len(ours) <= 64  # the audit trail's column
    if joined:
        prefix, suffix = ours.split("~")
        assert prefix == header
        assert len(suffix) == 24
        assert line["proxy_request_id"] == header
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", ours)
        assert "proxy_request_id" not in line
        if header:
            assert header not in "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)


def test_our_request_id_stays_unique_under_one_proxy_id(client: FlaskClient) -> None:
    ids = {client.get("/healthz", headers={"X-Request-ID": "same"}).headers["X-Request-ID"]}
    ids |= {client.get("/healthz", headers={"X-Request-ID": "same"}).headers["X-Request-ID"]}
    assert len(ids) == 2


def test_the_audit_row_and_every_line_of_a_request_carry_the_proxy_id(
    client: FlaskClient, dev_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    youth = {"Authorization": f"Bearer {dev_token('youth_worker', 'ungdomsjouren')}"}
    created = client.post(
        "/api/v1/referrals",
        json={"subject": {"name": NAME}, "categories": ["drugs"]},
        headers={**youth, "X-Request-ID": "edge-42"},
    )
    refused = client.get("/api/v1/referrals", headers={"X-Request-ID": "edge-43"})
    assert refused.status_code == 401
    auditor = {"Authorization": f"Bearer {dev_token('auditor')}"}
    events = client.get(
        f"/api/v1/audit/events?referral={created.json['id']}", headers=auditor
    ).json["items"]
    assert [e["request_id"] for e in events] == [created.headers["X-Request-ID"]]
    assert events[0]["request_id"].startswith("edge-42~")
    # The authentication failure is logged by the error handler, not the access hook: it is
    # stamped with the ids all the same (while the request is served).
    formatter = JsonFormatter()
    failure = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert failure
    assert json.loads(formatter.format(failure[0]))["proxy_request_id"] == "edge-43"


def test_a_library_message_keeps_only_its_constant_lead() -> None:
    record = logging.LogRecord(
        "gunicorn.error",
        logging.WARNING,
        __file__,
        1,
        f"Invalid request from ip=127.0.0.1: Invalid HTTP Header: 'X {NUMBER}'",
        None,
        None,
    )
    assert json.loads(JsonFormatter().format(record))["message"] == "Invalid request from ip"
    raised = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, None, None, None)
    raised.msg = ValueError(NAME)
    assert json.loads(JsonFormatter().format(raised))["message"] == "ValueError"


def test_gunicorns_access_line_takes_named_atoms_only() -> None:
    atoms = {
        "h": "203.0.113.9",
        "u": NAME,
        "r": f"GET /api/v1/referrals/x?q={NUMBER} HTTP/1.1",
        "U": "/api/v1/referrals/4c1f",
        "q": f"q={NUMBER}",
        "f": f"https://example.org/?q={NUMBER}",
        "a": "curl",
        "m": "GET",
        "s": "200",
        "B": 596,
        "D": 12345,
        "{x-request-id}i": f"raw {NUMBER}",
        "{referrals.route}e": "/api/v1/referrals/<uuid:referral_id>",
        "{referrals.request_id}e": "edge-1~abc",
        "{referrals.proxy_request_id}e": "edge-1",
    }
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "x", (atoms,), None)
    line = json.loads(JsonFormatter().format(record))
    assert line == {
        "time": line["time"],
        "level": "INFO",
        "logger": "gunicorn.access",
        "message": "request",
        "method": "GET",
        "route": "/api/v1/referrals/<uuid:referral_id>",
        "status": 200,
        "bytes": 596,
        "latency_ms": 12.35,
        "request_id": "edge-1~abc",
        "proxy_request_id": "edge-1",
    }
