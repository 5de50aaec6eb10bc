"""A referral's whole life over HTTP, every caller authenticated by the real OpenID Provider."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import Note, Referral, TimelineEvent
from tests.auth.conftest import MakeApp
from tests.auth.forgery import bearer
from tests.auth.problems import assert_problem
from tests.support.clock import FakeClock
from tests.support.idp import TestIdP

FORBIDDEN_ROLE = {
    "type": "urn:referrals:problem:forbidden",
    "title": "Forbidden",
    "status": 403,
    "detail": "this role has no referral inbox or outbox",
}
INTERNAL_TEXT = "Intern: familjen har tidigare kontakt med enheten"
SHARED_TEXT = "Delad: första samtal bokat"


def personnummer(yyyymmdd: str, serial: str) -> str:
    """A checksum-valid test personal number YYYYMMDD-NNNN (Luhn over YYMMDDNNN)."""
    digits = yyyymmdd[2:] + serial
    total = 0
    for index, char in enumerate(digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return f"{yyyymmdd}-{serial}{(10 - total % 10) % 10}"


def referral_body(district: str = "norrmalm") -> dict[str, Any]:
    return {
        "subject": {
            "name": "Testa Provsson",
            "personal_number": personnummer("20100517", "238"),
            "district": district,
        },
        "categories": ["school_absence", "family_conflict"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "place_met": "Sergels torg",
        "narrative": "Träffad under kvällspass, vill ha stöd.",
        "submit": True,
    }


def test_personnummer_helper_matches_the_known_test_number() -> None:
    assert personnummer("19121212", "121") == "19121212-1212"


def act(
    client: FlaskClient, rid: str, action: str, headers: dict[str, str], body: Any = None
) -> TestResponse:
    return client.post(f"/api/v1/referrals/{rid}/{action}", json=body or {}, headers=headers)


def assert_not_found(response: TestResponse, reference: TestResponse) -> None:
    """404, word for word the answer for a referral that does not exist: no existence leak.

    (The problem type's spelling is left to the reference answer; see the report on
    underscore vs. hyphen problem types.)"""
    body = response.get_json()
    assert response.status_code == 404, body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert body == reference.get_json()
    assert (body["status"], body["title"], body["detail"]) == (404, "Not Found", "no such referral")
    assert body["type"].startswith("urn:referrals:problem:not")


def assert_hidden_from(client: FlaskClient, rid: str, headers: dict[str, str]) -> None:
    """Outside the caller's scope: 404 everywhere, and absent from their inbox."""
    missing = str(uuid.uuid4())
    for path in ("", "/events", "/notes"):
        assert_not_found(
            client.get(f"/api/v1/referrals/{rid}{path}", headers=headers),
            client.get(f"/api/v1/referrals/{missing}{path}", headers=headers),
        )
    assert_not_found(act(client, rid, "accept", headers), act(client, missing, "accept", headers))
    inbox = client.get("/api/v1/referrals", headers=headers)
    assert inbox.status_code == 200, inbox.json
    assert rid not in [item["id"] for item in inbox.json["items"]]


def test_lifecycle_with_provider_tokens(
    idp_client: FlaskClient, oidc_provider: TestIdP, clock: FakeClock, database: Database
) -> None:
    worker = bearer(oidc_provider.token("ungdomsjouren-app"))
    norrmalm = bearer(oidc_provider.token("norrmalm-system"))
    sodermalm = bearer(oidc_provider.token("sodermalm-system"))

    draft = idp_client.post(
        "/api/v1/referrals", json=referral_body() | {"submit": False}, headers=worker
    )
    assert draft.status_code == 201, draft.json
    rid = draft.json["id"]
    assert (draft.json["status"], draft.json["receiving_unit"]) == ("draft", None)
    assert_hidden_from(idp_client, rid, norrmalm)  # a draft is the sender's alone
    assert_hidden_from(idp_client, rid, sodermalm)

    clock.advance(minutes=5)
    submitted = act(idp_client, rid, "submit", worker)
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["status"] == "requested"
    assert submitted.json["sending_unit"] == "ungdomsjouren"
    assert submitted.json["receiving_unit"] == "norrmalm"
    assert_hidden_from(idp_client, rid, sodermalm)

    clock.advance(minutes=10)
    inbox = idp_client.get("/api/v1/referrals", headers=norrmalm)
    assert inbox.status_code == 200, inbox.json
    assert [(i["id"], i["status"]) for i in inbox.json["items"]] == [(rid, "requested")]

    steps: list[tuple[str, dict[str, Any] | None, str]] = [
        ("accept", {}, "accepted"),
        ("start", None, "in_progress"),
    ]
    for action, body, status in steps:
        clock.advance(minutes=10)
        response = act(idp_client, rid, action, norrmalm, body)
        assert response.status_code == 200, response.json
        assert response.json["status"] == status
        assert_hidden_from(idp_client, rid, sodermalm)

    clock.advance(minutes=10)
    for text, visibility in ((INTERNAL_TEXT, "internal"), (SHARED_TEXT, "shared")):
        note = idp_client.post(
            f"/api/v1/referrals/{rid}/notes",
            json={"text": text, "visibility": visibility},
            headers=norrmalm,
        )
        assert note.status_code == 201, note.json
        assert (note.json["author_unit"], note.json["author_side"]) == ("norrmalm", "receiver")

    steps = [
        ("hold", {"reason_code": "awaiting_information"}, "on_hold"),
        ("resume", None, "in_progress"),
        ("complete", {"outcome_code": "support_started"}, "completed"),
    ]
    for action, body, status in steps:
        clock.advance(minutes=10)
        response = act(idp_client, rid, action, norrmalm, body)
        assert response.status_code == 200, response.json
        assert response.json["status"] == status
        assert_hidden_from(idp_client, rid, sodermalm)

    # The closed loop: the youth worker reads the outcome.
    read = idp_client.get(f"/api/v1/referrals/{rid}", headers=worker)
    assert read.status_code == 200, read.json
    assert read.json["status"] == "completed"
    assert read.json["outcome_code"] == "support_started"
    assert read.json["open"] is False
    assert INTERNAL_TEXT not in read.get_data(as_text=True)

    worker_notes = idp_client.get(f"/api/v1/referrals/{rid}/notes", headers=worker)
    assert worker_notes.status_code == 200, worker_notes.json
    assert [(n["text"], n["visibility"]) for n in worker_notes.json["items"]] == [
        (SHARED_TEXT, "shared")
    ]
    assert INTERNAL_TEXT not in worker_notes.get_data(as_text=True)
    receiver_notes = idp_client.get(f"/api/v1/referrals/{rid}/notes", headers=norrmalm)
    assert [n["text"] for n in receiver_notes.json["items"]] == [INTERNAL_TEXT, SHARED_TEXT]

    timeline = idp_client.get(f"/api/v1/referrals/{rid}/events", headers=worker)
    assert timeline.status_code == 200, timeline.json
    events = timeline.json["items"]
    assert [(e["action"], e["from_status"], e["to_status"], e["actor_unit"]) for e in events] == [
        ("create", None, "draft", "ungdomsjouren"),
        ("submit", "draft", "requested", "ungdomsjouren"),
        ("accept", "requested", "accepted", "norrmalm"),
        ("start", "accepted", "in_progress", "norrmalm"),
        ("hold", "in_progress", "on_hold", "norrmalm"),
        ("resume", "on_hold", "in_progress", "norrmalm"),
        ("complete", "in_progress", "completed", "norrmalm"),
    ]
    assert events[4]["reason_code"] == "awaiting_information"
    assert events[6]["outcome_code"] == "support_started"
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert INTERNAL_TEXT not in timeline.get_data(as_text=True)

    # Who did it is the provider's issuer and the client's subject, as the token said.
    with database.sessions() as session:
        row = session.get(Referral, uuid.UUID(rid))
        assert row is not None
        assert row.status == "completed"
        assert row.created_by == f"{oidc_provider.issuer}|ungdomsjouren-app"
        actors = session.scalars(
            select(TimelineEvent.actor).where(TimelineEvent.referral_id == row.id)
        ).all()
        assert sorted(set(actors)) == sorted(
            {f"{oidc_provider.issuer}|ungdomsjouren-app", f"{oidc_provider.issuer}|norrmalm-system"}
        )
        note_rows = session.scalars(select(Note).where(Note.referral_id == row.id)).all()
        assert sorted((n.visibility, n.author) for n in note_rows) == [
            ("internal", f"{oidc_provider.issuer}|norrmalm-system"),
            ("shared", f"{oidc_provider.issuer}|norrmalm-system"),
        ]


def test_created_and_submitted_at_once_outside_every_district_goes_to_intake(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    worker = bearer(oidc_provider.token("ungdomsjouren-app"))
    created = idp_client.post(
        "/api/v1/referrals", json=referral_body(district="farsta"), headers=worker
    )
    assert created.status_code == 201, created.json
    assert (created.json["status"], created.json["receiving_unit"]) == ("requested", "intake")
    events = idp_client.get(f"/api/v1/referrals/{created.json['id']}/events", headers=worker)
    assert [(e["action"], e["to_status"]) for e in events.json["items"]] == [
        ("create", "draft"),
        ("submit", "requested"),
    ]
    assert_hidden_from(
        idp_client, created.json["id"], bearer(oidc_provider.token("norrmalm-system"))
    )


def test_keycloak_style_roles_claim(
    idp_app: Flask, make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    """Keycloak nests roles under realm_access.roles; the claim path is configuration."""
    keycloak_app = make_idp_app(oidc_provider.issuer, oidc_roles_claim="realm_access.roles")
    keycloak = keycloak_app.test_client()
    kc_caseworker = bearer(oidc_provider.token("keycloak-style"))

    created = idp_app.test_client().post(
        "/api/v1/referrals",
        json=referral_body(),
        headers=bearer(oidc_provider.token("ungdomsjouren-app")),
    )
    assert created.status_code == 201, created.json
    rid = created.json["id"]

    inbox = keycloak.get("/api/v1/referrals", headers=kc_caseworker)
    assert inbox.status_code == 200, inbox.json
    assert [i["id"] for i in inbox.json["items"]] == [rid]
    accepted = act(keycloak, rid, "accept", kc_caseworker)
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "accepted"
    events = keycloak.get(f"/api/v1/referrals/{rid}/events", headers=kc_caseworker)
    assert [(e["action"], e["actor_unit"]) for e in events.json["items"]][-1] == (
        "accept",
        "norrmalm",
    )


def test_keycloak_style_token_has_no_role_where_roles_claim_is_default(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """Without the configured claim path the nested roles are not found: no known role."""
    response = idp_client.get(
        "/api/v1/referrals", headers=bearer(oidc_provider.token("keycloak-style"))
    )
    assert_problem(response, 403, FORBIDDEN_ROLE)


def test_default_roles_token_has_no_role_in_a_keycloak_configured_app(
    make_idp_app: MakeApp, oidc_provider: TestIdP, database: Database
) -> None:
    keycloak = make_idp_app(oidc_provider.issuer, oidc_roles_claim="realm_access.roles")
    response = keycloak.test_client().post(
        "/api/v1/referrals",
        json=referral_body(),
        headers=bearer(oidc_provider.token("ungdomsjouren-app")),
    )
    assert_problem(
        response,
        403,
        {
            "type": "urn:referrals:problem:forbidden",
            "title": "Forbidden",
            "status": 403,
            "detail": "only youth workers of a referring unit open referrals",
        },
    )
    with database.sessions() as session:
        assert session.scalars(select(Referral.id)).all() == []
