"""Crypto-shredding: ``referrals erase`` and ``services.referrals.erase``.

After an erasure the referral keeps its non-personal skeleton (status, units, priority,
categories, dates) and nothing else: its wrapped data key, KEK id, blind index and every
sealed column are gone from the row, and so are its notes' texts and its events' free text.
The service tests run on SQLite and PostgreSQL inside the usual rolled-back transaction; the
CLI tests drive the real command against a throw-away instance on both databases.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, select

from referrals.auth.principal import Principal, Role
from referrals.db.models import IdempotencyKey, Note, Referral, TimelineEvent
from referrals.domain.codes import EraseReason
from referrals.runtime import OPERATOR, Runtime
from referrals.services import referrals as referral_cases
from referrals.services.errors import Conflict, Forbidden, NotFound
from referrals.services.records import CASE_FIELDS
from tests.api.helpers import (
    CONFLICT,
    REFERRALS,
    Actors,
    act,
    assert_problem,
    create,
    forbid_server_errors,
    personal_number,
    referral_body,
)
from tests.services.test_key_rotation import REASON, Deployment, open_deployment, rewrap

SEALED = CASE_FIELDS
# What the skeleton loses: every personal field of the view.
PERSONAL_SUBJECT = ("name", "personal_number", "birth_date", "phone")
PERSONAL_TOP = ("guardian", "place_met", "narrative")

NUMBER = personal_number(2010, 6, 15, "417")
OTHER_NUMBER = personal_number(2010, 6, 15, "523")  # same birth date, another person
DECLINE_TEXT = "Ingen plats för Påhittad just nu."
HOLD_TEXT = "Familjen har rest bort; Påhittad hör av sig."


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Nothing here may answer a 5xx, whatever status a test asserts."""
    if "app" not in request.fixturenames:
        yield
        return
    seen = forbid_server_errors(request.getfixturevalue("app"))
    yield
    assert seen == []


def body_for(number: str | None = NUMBER, **overrides: Any) -> dict[str, Any]:
    return referral_body(
        subject={"name": "Påhittad Testsson", "personal_number": number},
        guardian={"name": "Förälder Testsson", "phone": "070-555 01 02"},
        place_met="Bakom den påhittade fritidsgården",
        narrative="Påhittad berättelse: sågs med äldre personer, verkade rädd.",
        **overrides,
    )


def erase(app: Flask, referral_id: str, reason: str = "data_subject_request") -> None:
    runtime: Runtime = app.extensions["referrals"]
    with runtime.unit_of_work() as uow:
        referral_cases.erase(
            uow, runtime.context(OPERATOR), uuid.UUID(referral_id), EraseReason(reason)
        )


def get(client: FlaskClient, referral_id: str, headers: Mapping[str, str]) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{referral_id}", headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == f'"v{response.get_json()["version"]}"'
    view = response.get_json()
    assert isinstance(view, dict)
    return view


def items(
    client: FlaskClient, referral_id: str, part: str, headers: Mapping[str, str]
) -> list[dict[str, Any]]:
    response = client.get(f"{REFERRALS}/{referral_id}/{part}", headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    listed = response.get_json()["items"]
    assert isinstance(listed, list)
    return listed


def search(client: FlaskClient, number: str, headers: Mapping[str, str]) -> list[str]:
    response = client.post(
        f"{REFERRALS}/search", json={"personal_number": number}, headers=dict(headers)
    )
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def skeleton_of(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What ``before`` should look like once erased: no personal field, ``erased`` set; the
    version and ``updated_at`` move on (erasure is a change)."""
    expected = {**before, "erased": True, **{k: None for k in PERSONAL_TOP}}
    subject = {k: v for k, v in (before["subject"] or {}).items() if k not in PERSONAL_SUBJECT}
    expected["subject"] = subject or None
    expected["version"] = after["version"]
    expected["updated_at"] = after["updated_at"]
    return expected


def assert_skeleton(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["erased"] is True
    assert after["version"] > before["version"]
    for name in PERSONAL_SUBJECT:
        assert (after["subject"] or {}).get(name) is None, name
    for name in PERSONAL_TOP:
        assert after[name] is None, name
    assert after == skeleton_of(before, after)


def raw_referral(connection: Connection, referral_id: str) -> dict[str, Any]:
    row = (
        connection.execute(
            select(Referral.__table__).where(Referral.__table__.c.id == uuid.UUID(referral_id))
        )
        .mappings()
        .one()
    )
    return dict(row)


def raw_children(connection: Connection, model: Any, referral_id: str) -> list[dict[str, Any]]:
    table = model.__table__
    rows = connection.execute(select(table).where(table.c.referral_id == uuid.UUID(referral_id)))
    return [dict(row) for row in rows.mappings()]


def assert_shredded(connection: Connection, referral_id: str) -> None:
    row = raw_referral(connection, referral_id)
    assert row["erased_at"] is not None
    for name in ("dek_wrapped", "kek_id", "personal_number_index", *SEALED):
        assert row[name] is None, name
    assert [n["text"] for n in raw_children(connection, Note, referral_id)] == [None] * len(
        raw_children(connection, Note, referral_id)
    )
    assert {e["reason_text"] for e in raw_children(connection, TimelineEvent, referral_id)} == {
        None
    }


def declined_with_notes(client: FlaskClient, actors: Actors, number: str = NUMBER) -> str:
    """Submitted to norrmalm, revealed to it (two-phase disclosure: it then reads the
    identity), notes from both sides, declined with a free-text reason."""
    rid = str(create(client, actors.worker, **body_for(number, submit=True))["id"])
    revealed = act(client, rid, "reveal", actors.norrmalm, {"reason_code": "known_to_unit"})
    assert revealed.status_code == 200, revealed.get_json()
    for headers, text, visibility in [
        (actors.worker, "Avsändarens delade anteckning om Påhittad.", "shared"),
        (actors.norrmalm, "Mottagarens delade anteckning.", "shared"),
        (actors.norrmalm, "Mottagarens interna anteckning.", "internal"),
    ]:
        note = client.post(
            f"{REFERRALS}/{rid}/notes",
            json={"text": text, "visibility": visibility},
            headers=headers,
        )
        assert note.status_code == 201, note.get_json()
    declined = act(
        client,
        rid,
        "decline",
        actors.norrmalm,
        {"reason_code": "not_appropriate", "reason_text": DECLINE_TEXT},
    )
    assert declined.status_code == 200, declined.get_json()
    return rid


def on_hold(client: FlaskClient, actors: Actors, number: str = NUMBER) -> str:
    """Open at norrmalm (accepted, started, on hold with a free-text reason)."""
    rid = str(create(client, actors.worker, **body_for(number, submit=True))["id"])
    for action, body in [
        ("accept", {}),
        ("start", {}),
        ("hold", {"reason_code": "awaiting_information", "reason_text": HOLD_TEXT}),
    ]:
        response = act(client, rid, action, actors.norrmalm, body)
        assert response.status_code == 200, response.get_json()
    return rid


# --- through the service, on both databases -------------------------------------------------


def test_an_erased_referral_reads_as_its_skeleton_on_both_sides(
    app: Flask, client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    rid = declined_with_notes(client, actors)
    sides = {"sender": actors.worker, "receiver": actors.norrmalm}
    before = {side: get(client, rid, headers) for side, headers in sides.items()}
    events_before = {side: items(client, rid, "events", h) for side, h in sides.items()}
    notes_before = {side: items(client, rid, "notes", h) for side, h in sides.items()}
    assert before["sender"]["narrative"]
    assert before["receiver"]["subject"]["name"]
    assert DECLINE_TEXT in {e["reason_text"] for e in events_before["sender"]}
    assert raw_referral(db_connection, rid)["dek_wrapped"] is not None

    erase(app, rid)

    for side, headers in sides.items():
        after = get(client, rid, headers)
        assert_skeleton(before[side], after)
        assert after["status"] == "rejected"
        assert after["sending_unit"] == "ungdomsjouren"
        assert after["receiving_unit"] == "norrmalm"
        assert after["subject"] == {"district": "norrmalm", "age": 16}

        # The timeline keeps every event, without free text, and records the erasure.
        events = items(client, rid, "events", headers)
        assert [e["reason_text"] for e in events] == [None] * len(events)
        kept = [{**e, "reason_text": None} for e in events_before[side]]
        assert events[: len(kept)] == kept
        assert [(e["action"], e["reason_code"]) for e in events[len(kept) :]] == [
            ("erase", "data_subject_request")
        ]

        # Notes are still listed (who, when, visibility), with no text.
        notes = items(client, rid, "notes", headers)
        assert notes == [{**n, "text": None} for n in notes_before[side]]

        assert search(client, NUMBER, headers) == []

    assert_shredded(db_connection, rid)


def test_an_erased_referral_takes_no_more_changes(
    app: Flask, client: FlaskClient, actors: Actors
) -> None:
    rid = on_hold(client, actors)
    erase(app, rid)
    erased = get(client, rid, actors.worker)

    for headers, action, body in [
        (actors.norrmalm, "resume", {}),
        (actors.norrmalm, "complete", {"outcome_code": "support_started"}),
        (actors.norrmalm, "cancel", {"reason_code": "no_longer_needed"}),
        (actors.worker, "mark-error", {"reason_code": "wrong_subject"}),
    ]:
        response = act(client, rid, action, headers, body)
        assert_problem(response, 409, CONFLICT)
        assert "Påhittad" not in response.get_data(as_text=True)
    for headers in (actors.worker, actors.norrmalm):
        note = client.post(
            f"{REFERRALS}/{rid}/notes",
            json={"text": "Ny anteckning efter radering.", "visibility": "shared"},
            headers=headers,
        )
        assert_problem(note, 409, CONFLICT)
    assert get(client, rid, actors.worker) == erased
    assert get(client, rid, actors.norrmalm)["status"] == "on_hold"


def test_an_erased_draft_can_be_neither_submitted_nor_edited(
    app: Flask, client: FlaskClient, actors: Actors
) -> None:
    draft = create(client, actors.worker, **body_for())
    erase(app, draft["id"])
    erased = get(client, draft["id"], actors.worker)
    assert_skeleton(draft, erased)

    assert_problem(act(client, draft["id"], "submit", actors.worker), 409, CONFLICT)
    patched = client.patch(
        f"{REFERRALS}/{draft['id']}",
        json={"narrative": "Skrivs in igen efter radering."},
        headers={**actors.worker, "If-Match": f'"v{erased["version"]}"'},
    )
    assert_problem(patched, 409, CONFLICT)
    assert get(client, draft["id"], actors.worker) == erased


def test_erasing_one_referral_leaves_the_others_as_they_were(
    app: Flask, client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    erased_id = on_hold(client, actors)
    same_person = create(client, actors.worker, **body_for(submit=True))["id"]
    other_person = create(client, actors.worker, **body_for(OTHER_NUMBER, submit=True))["id"]
    others = (same_person, other_person)
    before = {rid: get(client, rid, actors.worker) for rid in others}
    raw_before = {rid: raw_referral(db_connection, rid) for rid in others}
    assert sorted(search(client, NUMBER, actors.worker)) == sorted([erased_id, same_person])

    erase(app, erased_id)

    assert {rid: get(client, rid, actors.worker) for rid in others} == before
    assert {rid: raw_referral(db_connection, rid) for rid in others} == raw_before
    assert search(client, NUMBER, actors.worker) == [same_person]
    assert search(client, OTHER_NUMBER, actors.worker) == [other_person]
    # A new referral for the same person is told about the open one that is left only.
    submitted = create(client, actors.worker, **body_for(submit=True))
    assert submitted["possible_duplicates"] == [{"id": same_person, "status": "requested"}]


def test_erase_is_refused_twice_for_unknown_ids_and_for_anyone_but_an_admin(
    app: Flask, client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    rid = declined_with_notes(client, actors)
    runtime: Runtime = app.extensions["referrals"]
    caseworker = Principal(
        issuer="urn:test", subject="cw", roles=frozenset({Role.CASEWORKER}), unit="norrmalm"
    )
    with runtime.unit_of_work() as uow, pytest.raises(Forbidden):
        referral_cases.erase(
            uow, runtime.context(caseworker), uuid.UUID(rid), EraseReason.LEGAL_ORDER
        )
    assert raw_referral(db_connection, rid)["dek_wrapped"] is not None

    erase(app, rid)
    shredded = raw_referral(db_connection, rid)
    with pytest.raises(Conflict):
        erase(app, rid, "legal_order")
    with pytest.raises(NotFound):
        erase(app, str(uuid.uuid4()))
    assert raw_referral(db_connection, rid) == shredded
    erase_events = [
        e for e in raw_children(db_connection, TimelineEvent, rid) if e["action"] == "erase"
    ]
    assert [e["reason_code"] for e in erase_events] == ["data_subject_request"]


def test_erase_leaves_no_keyed_digest_of_the_request_body(
    app: Flask, client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    """An idempotent create stores an HMAC of the whole body (personal number, name,
    narrative) under the retained index key: a blind index of the referral's content, which
    erasure must destroy like the personal-number index (SECURITY.md: Encryption at rest)."""
    response = client.post(
        REFERRALS,
        json=body_for(submit=True),
        headers={**actors.worker, "Idempotency-Key": "erase-me-1"},
    )
    assert response.status_code == 201
    rid = response.get_json()["id"]
    assert raw_children(db_connection, IdempotencyKey, rid) != []

    erase(app, rid)

    digests = [row["fingerprint"] for row in raw_children(db_connection, IdempotencyKey, rid)]
    assert [digest for digest in digests if digest is not None] == []


# --- through the command line, against a real instance --------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


def test_erase_through_the_command_line(deployment: Deployment) -> None:
    client = deployment.app().test_client()
    actors = Actors(lambda role, unit=None: _raw_token(deployment, role, unit))
    rid = declined_with_notes(client, actors)
    kept = on_hold(client, actors)
    kept_before = get(client, kept, actors.worker)
    kept_raw = deployment.rows(Referral)[uuid.UUID(kept)]
    sender_before = get(client, rid, actors.worker)
    assert deployment.ok("keys", "status").splitlines() == [
        "kek-1\tcurrent\t2 referrals\t0 webhook secrets"
    ]

    # Only the coded reasons are accepted: free text could carry personal data into the log.
    for reason in ("the person asked us to", "DATA_SUBJECT_REQUEST", ""):
        refused = deployment.cli("erase", rid, "--reason", reason)
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for '--reason'" in refused.output
    missing = deployment.cli("erase", rid)
    assert missing.exit_code == 2
    assert "Missing option '--reason'" in missing.output
    assert deployment.cli("erase", "not-a-uuid", "--reason", "legal_order").exit_code == 2
    assert get(client, rid, actors.worker) == sender_before

    assert deployment.ok("erase", rid, "--reason", "data_subject_request").strip() == (
        f"referral {rid} erased"
    )

    for headers in (actors.worker, actors.norrmalm):
        after = get(client, rid, headers)
        assert after["erased"] is True
        assert after["status"] == "rejected"
        assert after["narrative"] is None
        assert after["guardian"] is None
        assert after["subject"] == {"district": "norrmalm", "age": sender_before["subject"]["age"]}
        assert [e["reason_text"] for e in items(client, rid, "events", headers)] == [None] * len(
            items(client, rid, "events", headers)
        )
        assert {n["text"] for n in items(client, rid, "notes", headers)} == {None}
        assert search(client, NUMBER, headers) == [kept]
    assert_skeleton(sender_before, get(client, rid, actors.worker))

    row = deployment.rows(Referral)[uuid.UUID(rid)]
    for name in ("dek_wrapped", "kek_id", "personal_number_index", *SEALED):
        assert row[name] is None, name
    assert {n["text"] for n in deployment.rows(Note).values() if str(n["referral_id"]) == rid} == {
        None
    }
    assert {
        e["reason_text"]
        for e in deployment.rows(TimelineEvent).values()
        if str(e["referral_id"]) == rid
    } == {None}
    # The erased referral no longer counts against any KEK.
    assert deployment.ok("keys", "status").splitlines() == [
        "kek-1\tcurrent\t1 referrals\t0 webhook secrets"
    ]

    again = deployment.refused("erase", rid, "--reason", "legal_order")
    assert "already erased" in again
    unknown = deployment.refused("erase", str(uuid.uuid4()), "--reason", "legal_order")
    assert "no such referral" in unknown

    assert get(client, kept, actors.worker) == kept_before
    assert deployment.rows(Referral)[uuid.UUID(kept)] == kept_raw

    # Rotation later on skips the erased referral; it still reads as a skeleton.
    deployment.ok("keys", "rotate", *REASON)
    rewrap(deployment)
    assert deployment.ok("keys", "status").splitlines() == [
        "kek-1\tretained\t0 referrals\t0 webhook secrets",
        "kek-2\tcurrent\t1 referrals\t0 webhook secrets",
    ]
    deployment.ok("keys", "retire", "kek-1", *REASON)
    fresh = deployment.app().test_client()
    assert get(fresh, rid, actors.worker)["erased"] is True
    assert get(fresh, kept, actors.worker) == kept_before


def _raw_token(deployment: Deployment, role: str, unit: str | None) -> str:
    return deployment.token(role, unit)["Authorization"].removeprefix("Bearer ")
