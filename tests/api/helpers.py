"""Shared helpers for the referral API behaviour tests: auth headers, bodies, numbers.

Everything here is made up: names are invented, personal numbers are generated with a
correct Luhn check digit for dates and serials chosen by the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from flask import Flask, Response, request
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import Referral, TimelineEvent

API = "/api/v1"
REFERRALS = f"{API}/referrals"
PROBLEM_JSON = "application/problem+json"

# Problem ``type`` values, in one place: urn:referrals:problem:<kebab-case code>.
PROBLEM = "urn:referrals:problem:"
VALIDATION = PROBLEM + "validation"
INVALID_TRANSITION = PROBLEM + "invalid-transition"
ACTION_NOT_ALLOWED = PROBLEM + "action-not-allowed"
MISSING_REQUIREMENT = PROBLEM + "missing-requirement"
INVALID_PERSONAL_NUMBER = PROBLEM + "invalid-personal-number"
NOT_FOUND = PROBLEM + "not-found"
CONFLICT = PROBLEM + "conflict"
UNPROCESSABLE = PROBLEM + "unprocessable"
PRECONDITION_FAILED = PROBLEM + "precondition-failed"
PRECONDITION_REQUIRED = PROBLEM + "precondition-required"
BLANK = "about:blank"

TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    428: "Precondition Required",
}

# The units seeded for every test (referrals/seeds/demo.json).
REFERRER = "ungdomsjouren"
NORRMALM, SODERMALM, KUNGSHOLMEN, INTAKE = "norrmalm", "sodermalm", "kungsholmen", "intake"

Minter = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Actors:
    """Authorization headers for the usual cast: the sender and the receiving units."""

    def __init__(self, dev_token: Minter) -> None:
        self._mint = dev_token
        self.worker = bearer(dev_token("youth_worker", REFERRER))
        self.norrmalm = bearer(dev_token("caseworker", NORRMALM))
        self.sodermalm = bearer(dev_token("caseworker", SODERMALM))
        self.kungsholmen = bearer(dev_token("caseworker", KUNGSHOLMEN))
        self.intake = bearer(dev_token("caseworker", INTAKE))

    def caseworker(self, unit: str) -> dict[str, str]:
        return bearer(self._mint("caseworker", unit))


# --- personal numbers -------------------------------------------------------------------


def luhn_check_digit(nine_digits: str) -> str:
    """The Skatteverket check digit over YYMMDDNNN (weights 2,1,2,1,...)."""
    assert len(nine_digits) == 9
    assert nine_digits.isdigit()
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def personal_number(
    year: int,
    month: int,
    day: int,
    serial: str = "238",
    *,
    coordination: bool = False,
    form: str = "12",
) -> str:
    """A Luhn-valid number for the given (not necessarily real) date.

    ``form``: "12" YYYYMMDDNNNC, "12-" YYYYMMDD-NNNC, "10" YYMMDDNNNC, "10-" YYMMDD-NNNC,
    "10+" YYMMDD+NNNC.  ``coordination`` adds 60 to the day (samordningsnummer).
    """
    issued_day = day + 60 if coordination else day
    yymmdd = f"{year % 100:02d}{month:02d}{issued_day:02d}"
    last4 = serial + luhn_check_digit(yymmdd + serial)
    century = f"{year // 100:02d}"
    forms = {
        "12": f"{century}{yymmdd}{last4}",
        "12-": f"{century}{yymmdd}-{last4}",
        "10": f"{yymmdd}{last4}",
        "10-": f"{yymmdd}-{last4}",
        "10+": f"{yymmdd}+{last4}",
    }
    return forms[form]


def with_wrong_check_digit(number: str) -> str:
    last = int(number[-1])
    return number[:-1] + str((last + 1) % 10)


# --- bodies -----------------------------------------------------------------------------


def referral_body(**overrides: Any) -> dict[str, Any]:
    """A complete, valid referral body (a draft unless ``submit=True``).

    Keyword arguments replace top-level keys; ``None`` drops a key; ``subject`` given as a
    mapping is merged into the default subject.
    """
    body: dict[str, Any] = {
        "subject": {
            "name": "Kim Exempelsson",
            "personal_number": personal_number(2011, 3, 14),
            "phone": "070-000 00 00",
            "district": NORRMALM,
        },
        "guardian": {"name": "Vera Exempelsson", "phone": "070-111 11 11"},
        "categories": ["drugs", "school_absence"],
        "priority": "normal",
        "legal_basis": "duty_to_report",
        "place_met": "Sergels torg",
        "narrative": "Met at the square late in the evening; seemed affected.",
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        elif key == "subject" and isinstance(value, Mapping):
            body["subject"] = {**body["subject"], **value}
        else:
            body[key] = copy.deepcopy(value)
    return body


# --- requests ---------------------------------------------------------------------------


def create(client: FlaskClient, headers: Mapping[str, str], **overrides: Any) -> dict[str, Any]:
    """Create a referral and return its JSON, asserting 201."""
    response = client.post(REFERRALS, json=referral_body(**overrides), headers=dict(headers))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def act(
    client: FlaskClient,
    referral_id: str,
    action: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None = None,
) -> TestResponse:
    return client.post(
        f"{REFERRALS}/{referral_id}/{action}", json=dict(body or {}), headers=dict(headers)
    )


def events(
    client: FlaskClient, referral_id: str, headers: Mapping[str, str]
) -> list[dict[str, Any]]:
    response = client.get(f"{REFERRALS}/{referral_id}/events", headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert isinstance(items, list)
    return items


def listing(client: FlaskClient, headers: Mapping[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(REFERRALS, query_string=params, headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def listed_ids(client: FlaskClient, headers: Mapping[str, str], **params: Any) -> list[str]:
    return [item["id"] for item in listing(client, headers, **params)["items"]]


def moment(value: str) -> datetime:
    """A timestamp from a response, which must carry its offset."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


def birth(value: str) -> date:
    return date.fromisoformat(value)


# --- assertions -------------------------------------------------------------------------


def assert_problem(
    response: TestResponse,
    status: int,
    type_: str,
    *,
    field: str | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem with this status and type; ``field`` must be the first error's."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON, response.headers
    body = response.get_json()
    assert isinstance(body, dict)
    assert body["type"] == type_, body
    assert body["title"] == TITLES[status], body
    assert body["status"] == status, body
    if field is not None:
        assert body["errors"], body
        assert body["errors"][0]["field"] == field, body
        assert body["errors"][0]["message"], body
    return body


def error_fields(body: Mapping[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


def counts(database: Database) -> tuple[int, int]:
    """(referrals, timeline events) as stored, seen from the test's own session."""
    with database.sessions() as session:
        referrals = session.scalar(select(func.count()).select_from(Referral))
        timeline = session.scalar(select(func.count()).select_from(TimelineEvent))
    return referrals or 0, timeline or 0


def forbid_server_errors(app: Flask) -> list[str]:
    """Record every 5xx the app answers; the caller asserts the list stays empty.

    ``after_request`` also runs for responses made by error handlers, so an unexpected
    exception turned into a bare 500 is caught here even when a test only checks 4xx.
    """
    seen: list[str] = []

    @app.after_request
    def record(response: Response) -> Response:
        if response.status_code >= 500:
            seen.append(f"{request.method} {request.path} -> {response.status_code}")
        return response

    return seen
