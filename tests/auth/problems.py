"""Assertions on the service's problem+json answers to authentication failures."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

PROBLEM = "application/problem+json"

# The whole 401 body, word for word: whatever check failed, the client learns nothing more.
INVALID_TOKEN = {
    "type": "urn:referrals:problem:invalid-token",
    "title": "Unauthorized",
    "status": 401,
    "detail": "A valid bearer access token is required in the Authorization header.",
}
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'


def assert_problem(response: TestResponse, status: int, body: dict[str, Any]) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == PROBLEM
    assert response.get_json() == body


def assert_invalid_token(response: TestResponse) -> None:
    assert_problem(response, 401, INVALID_TOKEN)
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE


def assert_unauthenticated(response: TestResponse) -> None:
    """401 for a request without usable credentials: a Bearer challenge, no reason given."""
    assert_problem(response, 401, INVALID_TOKEN)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert "error_description" not in challenge
