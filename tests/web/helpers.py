"""Driving the pages with Flask's test client: sign in, read the CSRF token, post forms.

Everything here is made up; personal numbers are valid-by-checksum test numbers.
"""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.api.helpers import personal_number

APP = "/app"
NEW = f"{APP}/referrals/new"
MINE = f"{APP}/referrals"
WORKER = "youth_worker@ungdomsjouren"
NORRMALM = "caseworker@norrmalm"
SODERMALM = "caseworker@sodermalm"
AUDITOR = "auditor@"
PNR = personal_number(2010, 3, 31)  # 16 years old in 2026, Luhn-valid, invented
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: TestResponse) -> str:
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, identity: str = WORKER) -> TestResponse:
    page = client.get(f"{APP}/dev/sign-in")
    assert page.status_code == 200
    response = client.post(
        f"{APP}/dev/sign-in", data={"identity": identity, "csrf_token": csrf(page)}
    )
    assert response.status_code == 302
    return response


def post(client: FlaskClient, url: str, data: dict[str, Any], *, page: str | None = None) -> Any:
    """Post ``data`` as the page at ``page`` (default ``url``) would, token included."""
    token = csrf(client.get(page or url))
    return client.post(url, data={**data, "csrf_token": token})


def referral_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "subject-name": "Testa Testsson",
        "subject-personal_number": PNR,
        "subject-district": "norrmalm",
        "categories": ["drugs", "school_absence"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "place_met": "Sergels torg, vid trappan",
        "narrative": "Påhittad berättelse för test: träffade en ung person sent på kvällen.",
        "action": "submit",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def created_id(response: TestResponse) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    found = re.search(r"/app/referrals/([0-9a-f-]{36})$", location)
    assert found, location
    return found.group(1)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)
