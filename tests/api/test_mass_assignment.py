"""No mass assignment: server-owned fields can never be written through a request body.

README: API overview: unknown fields in a request body are rejected (422), so ``status``, ``unit``,
ids and audit fields can never be mass-assigned.  Every test checks the problem+json
answer names the offending field, that nothing was written, and (where it matters) that
the same request *without* the offending field succeeds, so the 422 is about that field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import Note, Referral, Unit

API = "/api/v1"

# Server-owned fields of a referral (ReferralOut, and the row behind it), with values an
# attacker would like to set.
SERVER_OWNED: dict[str, Any] = {
    "id": "7d0f0a52-6d56-4a3b-9a53-2d7b2c1f4e10",
    "status": "accepted",
    "version": 7,
    "sending_unit": "faltgruppen",
    "receiving_unit": "sodermalm",
    "sending_unit_id": "faltgruppen",
    "receiving_unit_id": "sodermalm",
    "created_at": "2020-01-01T00:00:00+00:00",
    "updated_at": "2020-01-01T00:00:00+00:00",
    "submitted_at": "2020-01-01T00:00:00+00:00",
    "due_at": "2099-12-31T23:59:59+00:00",
    "created_by": "urn:someone|else",
    "assignee": "Handläggare Två",
    "reason_code": "duplicate",
    "outcome_code": "no_action_needed",
    "overdue": False,
    "open": True,
}
# Unknown keys inside nested objects: derived or server-side values, and plain junk.
NESTED_UNKNOWN: dict[str, tuple[str, Any]] = {
    "subject.age": ("subject", {"age": 15}),
    "subject.personal_number_index": ("subject", {"personal_number_index": "abc"}),
    "subject.receiving_unit": ("subject", {"receiving_unit": "sodermalm"}),
    "guardian.personal_number": ("guardian", {"personal_number": "19121212-1212"}),
    "consent.recorded_by": ("consent", {"recorded_by": "someone"}),
}


def bearer(dev_token: Callable[..., str], role: str, unit: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(role, unit)}"}


@pytest.fixture
def worker(dev_token: Callable[..., str]) -> dict[str, str]:
    return bearer(dev_token, "youth_worker", "ungdomsjouren")


@pytest.fixture
def caseworker(dev_token: Callable[..., str]) -> dict[str, str]:
    return bearer(dev_token, "caseworker", "norrmalm")


@pytest.fixture
def admin(dev_token: Callable[..., str]) -> dict[str, str]:
    return bearer(dev_token, "admin", None)


def referral_body(**extra: Any) -> dict[str, Any]:
    return {
        "subject": {"name": "Testa Testsson", "personal_number": "20100517-2380",
                    "district": "norrmalm"},
        "guardian": {"name": "Förälder Testsson", "phone": "070-000 00 00"},
        "categories": ["violence"],
        "priority": "urgent",
        "legal_basis": "consent",
        "consent": {"given_by": "guardian", "given_at": "2026-11-25T18:00:00+01:00"},
        "place_met": "Medborgarplatsen",
        "narrative": "Påhittad berättelse för test.",
        **extra,
    }  # fmt: skip


def with_nested(field: str) -> dict[str, Any]:
    parent, junk = NESTED_UNKNOWN[field]
    body = referral_body()
    body[parent] = {**body[parent], **junk}
    return body


def referral_rows(database: Database) -> list[tuple[Any, ...]]:
    with database.sessions() as session:
        return [
            (r.id, r.status, r.version, r.sending_unit_id, r.receiving_unit_id, r.due_at,
             r.created_at, r.updated_at, r.assignee, r.reason_code, r.outcome_code)
            for r in session.scalars(select(Referral).order_by(Referral.created_at, Referral.id))
        ]  # fmt: skip


def count(database: Database, model: type[Any]) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def unit_rows(database: Database) -> dict[str, tuple[Any, ...]]:
    with database.sessions() as session:
        return {
            u.id: (u.name, u.kind, tuple(u.districts), u.webhook_url, u.created_at, u.updated_at)
            for u in session.scalars(select(Unit))
        }


def assert_unknown_field(response: TestResponse, field: str) -> None:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == "urn:referrals:problem:validation"
    assert body["title"] == HTTPStatus(422).phrase
    assert body["status"] == 422
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["errors"][0]["message"]


def test_the_valid_bodies_are_valid(
    client: FlaskClient, database: Database, worker: dict[str, str]
) -> None:
    """The control: without the smuggled fields, the bodies below are accepted."""
    created = client.post(f"{API}/referrals", json={**referral_body(), "submit": True},
                          headers=worker)  # fmt: skip
    assert created.status_code == 201, created.json
    assert (created.json["status"], created.json["receiving_unit"]) == ("requested", "norrmalm")
    assert count(database, Referral) == 1


# --- POST /referrals ---------------------------------------------------------------------
# One test per endpoint, one subtest per smuggled field: building the app per test costs
# far more than the requests themselves.


@pytest.mark.parametrize("submit", [False, True], ids=["draft", "submit"])
def test_create_rejects_server_owned_fields(
    client: FlaskClient,
    database: Database,
    worker: dict[str, str],
    subtests: pytest.Subtests,
    submit: bool,
) -> None:
    for field, value in sorted(SERVER_OWNED.items()):
        with subtests.test(msg=field):
            body = referral_body(submit=submit, **{field: value})

            response = client.post(f"{API}/referrals", json=body, headers=worker)

            assert_unknown_field(response, field)
            assert count(database, Referral) == 0


def test_create_rejects_unknown_nested_keys(
    client: FlaskClient, database: Database, worker: dict[str, str], subtests: pytest.Subtests
) -> None:
    for field in sorted(NESTED_UNKNOWN):
        with subtests.test(msg=field):
            body = {**with_nested(field), "submit": True}

            response = client.post(f"{API}/referrals", json=body, headers=worker)

            assert_unknown_field(response, field)
            assert count(database, Referral) == 0


def test_create_with_an_idempotency_key_rejects_server_owned_fields(
    client: FlaskClient, database: Database, worker: dict[str, str]
) -> None:
    headers = {**worker, "Idempotency-Key": "mass-assignment-1"}
    smuggled = client.post(
        f"{API}/referrals", json=referral_body(receiving_unit="sodermalm"), headers=headers
    )
    assert_unknown_field(smuggled, "receiving_unit")
    assert count(database, Referral) == 0
    # The refused attempt did not claim the key: the honest body still creates.
    honest = client.post(f"{API}/referrals", json=referral_body(), headers=headers)
    assert honest.status_code == 201, honest.json
    assert count(database, Referral) == 1


# --- PATCH /referrals/{id} ----------------------------------------------------------------


@pytest.fixture
def draft(client: FlaskClient, worker: dict[str, str]) -> tuple[str, str]:
    created = client.post(f"{API}/referrals", json=referral_body(), headers=worker)
    assert created.status_code == 201, created.json
    return created.json["id"], created.headers["ETag"]


def test_patch_rejects_server_owned_and_unknown_fields(
    client: FlaskClient,
    database: Database,
    worker: dict[str, str],
    draft: tuple[str, str],
    subtests: pytest.Subtests,
) -> None:
    rid, etag = draft
    patches: dict[str, dict[str, Any]] = {
        field: {"narrative": "Ändrad.", field: value} for field, value in SERVER_OWNED.items()
    }
    patches["submit"] = {"narrative": "Ändrad.", "submit": True}
    for field in NESTED_UNKNOWN:
        # The whole nested object, valid but for the unknown key.
        parent = field.split(".")[0]
        patches[field] = {parent: with_nested(field)[parent]}
    before = referral_rows(database)

    for field, patch in sorted(patches.items()):
        with subtests.test(msg=field):
            response = client.patch(
                f"{API}/referrals/{rid}", json=patch, headers={**worker, "If-Match": etag}
            )

            assert_unknown_field(response, field)
            assert referral_rows(database) == before

    # The control: the same If-Match and an honest patch are accepted.
    unchanged = client.get(f"{API}/referrals/{rid}", headers=worker)
    assert unchanged.headers["ETag"] == etag
    assert unchanged.json["narrative"] == "Påhittad berättelse för test."
    response = client.patch(
        f"{API}/referrals/{rid}",
        json={"narrative": "Ändrad."},
        headers={**worker, "If-Match": etag},
    )
    assert response.status_code == 200, response.json
    assert (response.json["narrative"], response.json["status"]) == ("Ändrad.", "draft")


# --- POST /referrals/{id}/{action} ----------------------------------------------------------

# (action, the state it needs, who takes it, its valid body, the smuggled field and value)
ACTION_CASES = [
    ("submit", "draft", "worker", {}, "receiving_unit", "sodermalm"),
    ("submit", "draft", "worker", {}, "status", "accepted"),
    ("submit", "draft", "worker", {}, "due_at", "2099-12-31T00:00:00+00:00"),
    ("submit", "draft", "worker", {}, "unit", "sodermalm"),
    ("accept", "requested", "caseworker", {}, "status", "completed"),
    ("accept", "requested", "caseworker", {}, "receiving_unit", "sodermalm"),
    ("accept", "requested", "caseworker", {"assignee": "dev-caseworker@norrmalm"}, "version", 1),
    ("decline", "requested", "caseworker", {"reason_code": "no_capacity"}, "status", "accepted"),
    ("redirect", "requested", "caseworker",
     {"unit": "kungsholmen", "reason_code": "wrong_district"}, "receiving_unit", "sodermalm"),
    ("cancel", "requested", "worker", {"reason_code": "no_longer_needed"}, "outcome_code",
     "no_action_needed"),
    ("start", "accepted", "caseworker", {}, "assignee", "Handläggare Två"),
    ("hold", "in_progress", "caseworker", {"reason_code": "awaiting_information"}, "due_at",
     "2099-12-31T00:00:00+00:00"),
    ("resume", "on_hold", "caseworker", {}, "status", "completed"),
    ("complete", "in_progress", "caseworker", {"outcome_code": "support_started"},
     "reason_code", "other"),
    ("fail", "in_progress", "caseworker", {"reason_code": "subject_unreachable"},
     "outcome_code", "support_started"),
    ("mark-error", "requested", "worker", {"reason_code": "data_entry_error"}, "created_by",
     "urn:someone|else"),
]  # fmt: skip
STEPS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "draft": [],
    "requested": [("submit", {})],
    "accepted": [("submit", {}), ("accept", {})],
    "in_progress": [("submit", {}), ("accept", {}), ("start", {})],
    "on_hold": [
        ("submit", {}),
        ("accept", {}),
        ("start", {}),
        ("hold", {"reason_code": "no_capacity"}),
    ],
}


@pytest.mark.parametrize(
    ("action", "state", "who", "valid", "field", "value"),
    [pytest.param(*case, id=f"{case[0]}+{case[4]}") for case in ACTION_CASES],
)
def test_action_bodies_reject_extra_fields(
    client: FlaskClient,
    database: Database,
    worker: dict[str, str],
    caseworker: dict[str, str],
    action: str,
    state: str,
    who: str,
    valid: dict[str, Any],
    field: str,
    value: Any,
) -> None:
    created = client.post(f"{API}/referrals", json=referral_body(), headers=worker)
    assert created.status_code == 201, created.json
    rid = created.json["id"]
    for step, body in STEPS[state]:
        done = client.post(
            f"{API}/referrals/{rid}/{step}",
            json=body,
            headers=worker if step == "submit" else caseworker,
        )
        assert done.status_code == 200, done.json
    headers = worker if who == "worker" else caseworker
    before = referral_rows(database)
    events_before = client.get(f"{API}/referrals/{rid}/events", headers=headers).json["items"]

    response = client.post(
        f"{API}/referrals/{rid}/{action}", json={**valid, field: value}, headers=headers
    )

    assert_unknown_field(response, field)
    assert referral_rows(database) == before
    events_after = client.get(f"{API}/referrals/{rid}/events", headers=headers).json["items"]
    assert events_after == events_before
    # The control: the same request without the smuggled field is taken.
    taken = client.post(f"{API}/referrals/{rid}/{action}", json=valid, headers=headers)
    assert taken.status_code == 200, taken.json
    if field in {"receiving_unit", "unit"}:
        assert taken.json["receiving_unit"] != value


# --- notes ---------------------------------------------------------------------------------

NOTE_SERVER_OWNED: dict[str, Any] = {
    "author_side": "receiver",
    "author_unit": "norrmalm",
    "author": "urn:someone|else",
    "id": str(uuid.UUID(int=1)),
    "created_at": "2020-01-01T00:00:00+00:00",
    "referral_id": str(uuid.UUID(int=2)),
}


def test_note_bodies_reject_server_owned_fields(
    client: FlaskClient,
    database: Database,
    worker: dict[str, str],
    draft: tuple[str, str],
    subtests: pytest.Subtests,
) -> None:
    rid, _ = draft
    body = {"text": "En anteckning.", "visibility": "internal"}
    for field, value in sorted(NOTE_SERVER_OWNED.items()):
        with subtests.test(msg=field):
            response = client.post(
                f"{API}/referrals/{rid}/notes", json={**body, field: value}, headers=worker
            )

            assert_unknown_field(response, field)
            assert count(database, Note) == 0

    taken = client.post(f"{API}/referrals/{rid}/notes", json=body, headers=worker)
    assert taken.status_code == 201, taken.json
    assert (taken.json["author_side"], taken.json["author_unit"]) == ("sender", "ungdomsjouren")
    assert count(database, Note) == 1


# --- query strings ------------------------------------------------------------------------


def test_listing_rejects_unknown_filters(
    client: FlaskClient, caseworker: dict[str, str], subtests: pytest.Subtests
) -> None:
    """ListArgs is a StrictSchema: an unknown filter is an error, not silently ignored."""
    for field in ("sending_unit", "receiving_unit", "unit", "created_by"):
        with subtests.test(msg=field):
            response = client.get(
                f"{API}/referrals", query_string={field: "sodermalm"}, headers=caseworker
            )
            assert_unknown_field(response, field)


def test_naming_another_unit_in_the_query_does_not_widen_the_inbox(
    client: FlaskClient, worker: dict[str, str], caseworker: dict[str, str]
) -> None:
    ids = {}
    for district in ("norrmalm", "sodermalm"):
        body = referral_body(submit=True)
        body["subject"] = {"name": "Testa Testsson", "district": district}
        created = client.post(f"{API}/referrals", json=body, headers=worker)
        assert created.status_code == 201, created.json
        assert created.json["receiving_unit"] == district
        ids[district] = created.json["id"]

    for query in ({}, {"receiving_unit": "sodermalm"}, {"sending_unit": "ungdomsjouren"}):
        listed = client.get(f"{API}/referrals", query_string=query, headers=caseworker)
        if listed.status_code == 422:
            continue  # refused outright (test_listing_rejects_unknown_filters)
        assert listed.status_code == 200, listed.json
        assert [item["id"] for item in listed.json["items"]] == [ids["norrmalm"]], query


# --- units ---------------------------------------------------------------------------------

UNIT_SERVER_OWNED: dict[str, Any] = {
    "created_at": "2020-01-01T00:00:00+00:00",
    "updated_at": "2020-01-01T00:00:00+00:00",
    "webhook_secret": "whsec_c2hvdWxkLW5vdC1iZS1zZXQtYnktY2xpZW50",
}
NEW_UNIT = {"id": "mottagning-norr", "name": "Mottagning Norr", "kind": "receiver",
            "districts": ["vasastan"]}  # fmt: skip


def test_unit_create_rejects_server_owned_fields(
    client: FlaskClient, database: Database, admin: dict[str, str], subtests: pytest.Subtests
) -> None:
    before = unit_rows(database)
    for field, value in sorted(UNIT_SERVER_OWNED.items()):
        with subtests.test(msg=field):
            response = client.post(f"{API}/units", json={**NEW_UNIT, field: value}, headers=admin)

            assert_unknown_field(response, field)
            assert unit_rows(database) == before

    taken = client.post(f"{API}/units", json=NEW_UNIT, headers=admin)
    assert taken.status_code == 201, taken.json
    assert taken.json["created_at"] != UNIT_SERVER_OWNED["created_at"]
    assert "webhook_secret" not in taken.json


def test_unit_replace_rejects_ids_and_server_owned_fields(
    client: FlaskClient, database: Database, admin: dict[str, str], subtests: pytest.Subtests
) -> None:
    body = {"name": "Kungsholmen nya", "kind": "receiver", "districts": ["kungsholmen"]}
    smuggled = {"id": "norrmalm", **UNIT_SERVER_OWNED}
    before = unit_rows(database)
    for field, value in sorted(smuggled.items()):
        with subtests.test(msg=field):
            response = client.put(
                f"{API}/units/kungsholmen", json={**body, field: value}, headers=admin
            )

            assert_unknown_field(response, field)
            assert unit_rows(database) == before

    taken = client.put(f"{API}/units/kungsholmen", json=body, headers=admin)
    assert taken.status_code == 200, taken.json
    assert (taken.json["id"], taken.json["name"]) == ("kungsholmen", "Kungsholmen nya")
