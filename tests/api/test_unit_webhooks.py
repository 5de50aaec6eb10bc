"""A unit's webhook endpoint as the admin API manages it, and answers the API must not give.

- An answer that carries a signing secret (or a preview, which carries an age) must not be
  kept by any cache between the admin and the service.
- ``webhook_enabled`` left out keeps an unchanged endpoint as it was: renaming a unit must
  not switch on an endpoint an operator registered as not ready.
- A new endpoint gets a new secret: whoever ran the old endpoint cannot sign for the new.
- Argument edge cases that used to end in a 5xx: a version beyond the column's integer, a
  path argument longer than the audit column, a database that is busy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import OperationalError

from referrals.audit.actions import AuditAction
from referrals.config import Settings
from referrals.db.models import AuditEvent
from referrals.worker import Worker
from tests.api.helpers import (
    API,
    NORRMALM,
    PROBLEM_JSON,
    SODERMALM,
    UNPROCESSABLE,
    VALIDATION,
    Actors,
    assert_problem,
    bearer,
    create,
    forbid_server_errors,
    referral_body,
)
from tests.support.clock import FakeClock
from tests.support.standard_webhooks import WebhookVerificationError, verify
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import Received, WebhookReceiver

Headers = dict[str, str]
UNITS = f"{API}/units"
RULES = f"{API}/routing-rules"
PREVIEW = f"{API}/routing/preview"
DATABASE_BUSY = "urn:referrals:problem:database-busy"
AUDIT = AuditEvent.__table__


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path, webhook_timeout=2.0)


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """As tests/api/conftest.py: no 5xx, except the ones a test lists as expected."""
    expected: list[str] = []
    if "app" not in request.fixturenames:
        yield expected
        return
    seen = forbid_server_errors(request.getfixturevalue("app"))
    yield expected
    assert seen == expected


@pytest.fixture
def admin(dev_token: Callable[..., str]) -> Headers:
    return bearer(dev_token("admin"))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture
def worker(app: Flask) -> Iterator[Worker]:
    job = Worker(app.extensions["referrals"])
    yield job
    job.sender.close()


# --- helpers -------------------------------------------------------------------------------


def unit_body(client: FlaskClient, admin: Headers, unit: str, **changes: Any) -> dict[str, Any]:
    """The unit as it is (name, kind, districts, webhook_url), with ``changes``; a key
    given as ... is left out of the body."""
    view = client.get(f"{UNITS}/{unit}", headers=admin).get_json()
    body = {key: view[key] for key in ("name", "kind", "districts", "webhook_url")}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def put(client: FlaskClient, admin: Headers, unit: str, body: Mapping[str, Any]) -> Any:
    response = client.put(f"{UNITS}/{unit}", json=dict(body), headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def stored_unit(connection: Connection, unit: str) -> dict[str, Any]:
    row = connection.execute(
        text(
            "SELECT name, webhook_url, webhook_enabled, webhook_secret, webhook_secret_kek_id,"
            " updated_at FROM units WHERE id = :id"
        ),
        {"id": unit},
    ).mappings()
    (only,) = row.all()
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in only.items()}


def submit(client: FlaskClient, actors: Actors, district: str = NORRMALM) -> str:
    rid = create(client, actors.worker, submit=True, subject={"district": district})["id"]
    assert isinstance(rid, str)
    return rid


def signed(secret: str, request: Received, clock: FakeClock) -> Any:
    return verify(secret, request.headers, request.body, now=clock.now.timestamp())


def audit_ids(connection: Connection) -> set[uuid.UUID]:
    return set(connection.execute(select(AUDIT.c.id)).scalars())


def new_events(connection: Connection, before: set[uuid.UUID]) -> list[dict[str, Any]]:
    rows = connection.execute(select(AUDIT)).mappings().all()
    return [dict(row) for row in rows if row["id"] not in before]


# --- caches --------------------------------------------------------------------------------


def test_answers_carrying_a_secret_or_an_age_forbid_caching(
    client: FlaskClient, admin: Headers
) -> None:
    """Attack: a shared cache (a reverse proxy, the admin's browser) keeps the one answer
    that carries a webhook signing secret, for anyone who gets that cache to replay it."""
    created = client.post(
        UNITS,
        json={
            "id": "faltgruppen",
            "name": "Fältgruppen City",
            "kind": "referrer",
            "webhook_url": "https://faltgruppen.example.invalid/hook",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["webhook_secret"].startswith("whsec_")
    assert created.headers.get("Cache-Control") == "no-store"

    body = unit_body(client, admin, NORRMALM, webhook_url="https://norrmalm.example.invalid/h")
    issued = client.put(f"{UNITS}/{NORRMALM}", json=body, headers=admin)
    assert issued.status_code == 200
    assert "webhook_secret" in issued.get_json()
    assert issued.headers.get("Cache-Control") == "no-store"
    rotated = client.put(
        f"{UNITS}/{NORRMALM}", json={**body, "rotate_webhook_secret": True}, headers=admin
    )
    assert rotated.status_code == 200
    assert rotated.get_json()["webhook_secret"] != issued.get_json()["webhook_secret"]
    assert rotated.headers.get("Cache-Control") == "no-store"

    # The preview's explanation holds the age its birth date gives.
    preview = client.post(PREVIEW, json=referral_body(), headers=admin)
    assert preview.status_code == 200, preview.get_json()
    assert preview.get_json()["unit"] == NORRMALM
    assert preview.headers.get("Cache-Control") == "no-store"


# --- webhook_enabled ---------------------------------------------------------------------


def test_an_unchanged_endpoint_keeps_its_switch_when_webhook_enabled_is_left_out(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    db_connection: Connection,
) -> None:
    """Attack (by accident): an operator renames a unit whose endpoint was registered as
    not ready; before the fix the missing ``webhook_enabled`` meant true, and deliveries
    started to a system that was not ready (or to a seeded placeholder URL)."""
    url = receiver.url("/norrmalm")
    registered = put_webhook(client, admin, NORRMALM, url, enabled=False)
    assert registered["webhook_enabled"] is False
    assert registered["webhook_secret"].startswith("whsec_")
    secret_before = stored_unit(db_connection, NORRMALM)["webhook_secret"]

    renamed = put(client, admin, NORRMALM, unit_body(client, admin, NORRMALM, name="Norrmalm C"))
    assert (renamed["name"], renamed["webhook_url"]) == ("Norrmalm C", url)
    assert renamed["webhook_enabled"] is False
    assert "webhook_secret" not in renamed  # same endpoint, same secret: not shown again
    assert stored_unit(db_connection, NORRMALM)["webhook_secret"] == secret_before

    submit(client, actors)
    result = worker.run_round()
    assert (result.claimed, result.delivered, result.skipped) == (1, 0, 1)
    assert receiver.received == []

    # Explicit values are honoured, either way, on the same endpoint; left out, it stays.
    body = unit_body(client, admin, NORRMALM)
    for switch in (True, False):
        assert (
            put(client, admin, NORRMALM, {**body, "webhook_enabled": switch})["webhook_enabled"]
            is switch
        )
        assert put(client, admin, NORRMALM, body)["webhook_enabled"] is switch
    assert stored_unit(db_connection, NORRMALM)["webhook_secret"] == secret_before


def test_a_new_endpoint_is_enabled_unless_said_otherwise_and_no_endpoint_is_off(
    client: FlaskClient, admin: Headers, db_connection: Connection
) -> None:
    put_webhook(client, admin, NORRMALM, "https://old.example.invalid/hook", enabled=False)

    moved = put(
        client,
        admin,
        NORRMALM,
        unit_body(client, admin, NORRMALM, webhook_url="https://new.example.invalid/hook"),
    )
    assert moved["webhook_enabled"] is True
    assert moved["webhook_secret"].startswith("whsec_")

    paused = put(
        client,
        admin,
        NORRMALM,
        unit_body(
            client,
            admin,
            NORRMALM,
            webhook_url="https://newer.example.invalid/hook",
            webhook_enabled=False,
        ),
    )
    assert paused["webhook_enabled"] is False
    assert paused["webhook_secret"].startswith("whsec_")

    # No endpoint: off, whatever was asked, and the secret is gone from the database.
    for removal in ({"webhook_url": None, "webhook_enabled": True}, {"webhook_url": ...}):
        put_webhook(client, admin, NORRMALM, "https://again.example.invalid/hook")
        assert stored_unit(db_connection, NORRMALM)["webhook_secret"] is not None
        gone = put(client, admin, NORRMALM, unit_body(client, admin, NORRMALM, **removal))
        assert (gone["webhook_url"], gone["webhook_enabled"]) == (None, False), removal
        assert "webhook_secret" not in gone
        row = stored_unit(db_connection, NORRMALM)
        assert (row["webhook_secret"], row["webhook_secret_kek_id"]) == (None, None), removal

    created = client.post(
        UNITS,
        json={"id": "faltgruppen", "name": "Fältgruppen", "kind": "referrer",
              "webhook_url": "https://falt.example.invalid/hook"},
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 201
    assert created.get_json()["webhook_enabled"] is True


# --- a moved endpoint gets a new secret ----------------------------------------------------


def test_a_changed_webhook_url_gets_a_new_secret_and_only_it_verifies(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    clock: FakeClock,
) -> None:
    """Attack: the old endpoint's operator (a vendor the unit left, a decommissioned host
    someone else now holds) kept the signing secret.  Before the fix a changed URL kept the
    secret, so the old operator could forge deliveries the new endpoint would accept."""
    old = put_webhook(client, admin, NORRMALM, receiver.url("/old"))["webhook_secret"]
    submit(client, actors)
    worker.run_round()
    (before,) = receiver.received
    assert before.path == "/old"
    signed(old, before, clock)

    moved = put(
        client,
        admin,
        NORRMALM,
        unit_body(client, admin, NORRMALM, webhook_url=receiver.url("/new")),
    )
    new = moved.get("webhook_secret")
    assert isinstance(new, str), f"a moved endpoint was issued no secret: {moved}"
    assert new.startswith("whsec_")
    assert new != old
    # Shown once: neither a read nor a PUT of the same endpoint shows it again.
    again = client.get(f"{UNITS}/{NORRMALM}", headers=admin).get_data(as_text=True)
    assert new not in again
    assert "webhook_secret" not in put(client, admin, NORRMALM, unit_body(client, admin, NORRMALM))

    rid = submit(client, actors)
    clock.advance(seconds=5)
    result = worker.run_round()
    assert (result.claimed, result.delivered) == (1, 1)
    after = receiver.received[1]
    assert after.path == "/new"
    assert signed(new, after, clock)["data"]["referral_id"] == rid
    with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
        signed(old, after, clock)


def test_rotating_the_secret_of_no_endpoint_is_refused_and_changes_nothing(
    client: FlaskClient, admin: Headers, db_connection: Connection, clock: FakeClock
) -> None:
    """Before the fix the request succeeded: it silently removed the endpoint (and the
    rename with it went through) while the admin believed a secret had been rotated."""
    put_webhook(client, admin, NORRMALM, "https://norrmalm.example.invalid/hook")
    before = {unit: stored_unit(db_connection, unit) for unit in (NORRMALM, SODERMALM)}
    clock.advance(minutes=1)

    attempts: list[tuple[str, dict[str, Any]]] = [
        (NORRMALM, {"webhook_url": None}),
        (NORRMALM, {"webhook_url": ...}),
        (SODERMALM, {}),  # never had an endpoint
    ]
    for unit, change in attempts:
        body = unit_body(client, admin, unit, name="Omdöpt", rotate_webhook_secret=True, **change)
        response = client.put(f"{UNITS}/{unit}", json=body, headers=admin)
        problem = assert_problem(response, 422, UNPROCESSABLE, field="rotate_webhook_secret")
        assert "webhook_secret" not in problem
        assert "whsec_" not in response.get_data(as_text=True)
    assert {unit: stored_unit(db_connection, unit) for unit in before} == before


# --- arguments that used to end in a 5xx ---------------------------------------------------


@pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "-1", "0"])
def test_a_rule_set_version_beyond_the_column_is_a_validation_error(
    client: FlaskClient, admin: Headers, version: str
) -> None:
    """Before the fix PostgreSQL refused the out-of-range integer: a 500."""
    response = client.get(RULES, query_string={"version": version}, headers=admin)
    assert_problem(response, 422, VALIDATION, field="version")


def test_the_largest_rule_set_version_is_simply_not_found(
    client: FlaskClient, admin: Headers
) -> None:
    response = client.get(RULES, query_string={"version": str(2**31 - 1)}, headers=admin)
    assert response.status_code == 404, response.get_json()


LONG_RULE_ID = "r" + "0123456789abcdef" * 5  # 81 characters
LONG_UNIT_ID = ("kungsholmen-" * 20)[:200]
RULE_BODY = {"position": 15, "unit": SODERMALM, "match": {"districts": [SODERMALM]}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"{RULES}/{LONG_RULE_ID}", RULE_BODY),
        ("GET", f"{UNITS}/{LONG_UNIT_ID}", None),
    ],
    ids=["rule", "unit"],
)
def test_a_path_argument_of_the_wrong_shape_never_reaches_the_audit_trail(
    client: FlaskClient,
    admin: Headers,
    db_connection: Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """Attack: an anonymous caller sends a path argument longer than the audit row's
    target column.  Before the fix the refusal's audit event could not be written on
    PostgreSQL (value too long) and every such request failed 503: a cheap way to make
    the service look down.  Rule ids are UUIDs and unit ids slugs of at most 64
    characters: the router answers 404 for anything else, before any view or audit."""
    for headers in [{}, admin]:
        before = audit_ids(db_connection)
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 404, response.get_data(as_text=True)
        assert new_events(db_connection, before) == []


# --- a busy database -------------------------------------------------------------------------


def lock_timeout(*_args: Any, **_kwargs: Any) -> None:
    raise OperationalError("SELECT secret FROM units", {}, Exception("lock timeout"))


def test_a_database_lock_timeout_is_a_503_that_says_nothing_about_the_query(
    app: Flask,
    client: FlaskClient,
    admin: Headers,
    db_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
    no_server_errors: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lock or statement timeout (or a deadlock victim) rolled the transaction back
    whole: the client may retry, so 503 with Retry-After, not a 500 that says "bug".
    The driver's message names tables and columns: it reaches neither answer nor log."""
    monkeypatch.setattr("referrals.db.repositories.UnitRepository.all", lock_timeout)
    before = audit_ids(db_connection)

    response = client.get(UNITS, headers=admin)
    no_server_errors.append(f"GET {UNITS} -> 503")

    answer = response.get_data(as_text=True)
    assert response.status_code == 503, answer
    assert response.mimetype == PROBLEM_JSON
    problem = response.get_json()
    assert (problem["type"], problem["status"]) == (DATABASE_BUSY, 503)
    assert response.headers.get("Retry-After", "").isdigit()
    assert response.headers.get("X-Request-ID")
    for needle in ("SELECT", "secret", "units", "lock timeout"):
        assert needle not in answer, needle
        for record in caplog.records:
            assert needle not in record.getMessage(), record
            assert needle not in (record.exc_text or ""), record
    (event,) = new_events(db_connection, before)
    assert (event["action"], event["outcome"], event["http_status"]) == (
        AuditAction.UNIT_LIST.value,
        "error",
        503,
    )
    assert event["request_id"] == response.headers["X-Request-ID"]
