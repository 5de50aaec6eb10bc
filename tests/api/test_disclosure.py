"""Two-phase disclosure (issue 12, item 1), on SQLite and PostgreSQL.

Until the receiving unit accepts, its caseworkers see what they need to decide and not
who the referral is about.  Each test below is an attack by a caseworker of the
receiving unit on one path (GET, list, search, events, notes, the answer to its own
decision) — the identity and free text of a requested referral must not come back — and
then the proof that the path does show them once the referral is disclosed (accept or
reveal), so that none of these tests passes by showing nothing to anyone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals import create_app
from referrals.config import Settings
from referrals.db.engine import Database
from referrals.db.models import AuditEvent
from referrals.domain.codes import DisclosurePolicy, RevealReason
from tests.api.helpers import (
    ACTION_NOT_ALLOWED,
    CONFLICT,
    NORRMALM,
    REFERRALS,
    SODERMALM,
    VALIDATION,
    Actors,
    act,
    assert_problem,
    create,
    events,
    listing,
    personal_number,
)
from tests.conftest import seed_units
from tests.support.clock import FakeClock

NUMBER = personal_number(2010, 6, 2, "412")
# Every identifying or free-text value of the referral: none may reach an undisclosed view.
SECRETS = {
    "name": "Hemlig Påhittadsson",
    "personal_number": NUMBER,
    "birth_date": "2010-06-02",
    "phone": "070-987 65 43",
    "guardian": "Förälder Påhittadsson",
    "guardian_phone": "070-555 44 33",
    "narrative": "Berättelse som identifierar",
    "place_met": "Påhittade torget 7",
}
SHARED_NOTE = "Delad anteckning om Hemlig"


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "subject": {
            "name": SECRETS["name"],
            "personal_number": NUMBER,
            "phone": SECRETS["phone"],
            "district": NORRMALM,
        },
        "guardian": {"name": SECRETS["guardian"], "phone": SECRETS["guardian_phone"]},
        "categories": ["violence", "drugs"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "place_met": SECRETS["place_met"],
        "narrative": SECRETS["narrative"],
        "submit": True,
        **overrides,
    }


def submitted(client: FlaskClient, actors: Actors, **overrides: Any) -> str:
    response = client.post(REFERRALS, json=body(**overrides), headers=actors.worker)
    assert response.status_code == 201, response.get_json()
    rid = response.get_json()["id"]
    note = client.post(
        f"{REFERRALS}/{rid}/notes",
        json={"text": SHARED_NOTE, "visibility": "shared"},
        headers=actors.worker,
    )
    assert note.status_code == 201, note.get_json()
    return str(rid)


def leaked(text: str) -> set[str]:
    """Which secret values appear in an answer (JSON escapes undone)."""
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    secrets = {**SECRETS, "note": SHARED_NOTE, "number_10": NUMBER[2:]}
    return {name for name, value in secrets.items() if value in text}


def leaks(answers: Mapping[str, str]) -> dict[str, set[str]]:
    """Per path, the secrets its answer gave away (only the paths that leaked)."""
    return {path: found for path, text in answers.items() if (found := leaked(text))}


def get(client: FlaskClient, rid: str, headers: Mapping[str, str]) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{rid}", headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    assert not leaked(response.get_data(as_text=True)) or response.get_json()["disclosure"] == (
        "full"
    )
    view = response.get_json()
    assert isinstance(view, dict)
    return view


def every_path(client: FlaskClient, rid: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The raw text of each answer a caseworker can get about the referral."""
    h = dict(headers)
    return {
        "get": client.get(f"{REFERRALS}/{rid}", headers=h).get_data(as_text=True),
        "list": client.get(REFERRALS, headers=h).get_data(as_text=True),
        "search": client.post(
            f"{REFERRALS}/search", json={"personal_number": NUMBER}, headers=h
        ).get_data(as_text=True),
        "events": client.get(f"{REFERRALS}/{rid}/events", headers=h).get_data(as_text=True),
        "notes": client.get(f"{REFERRALS}/{rid}/notes", headers=h).get_data(as_text=True),
    }


def reveal(
    client: FlaskClient, rid: str, headers: Mapping[str, str], reason: str = "known_to_unit"
) -> Any:
    return client.post(f"{REFERRALS}/{rid}/reveal", json={"reason_code": reason}, headers=headers)


# --- the decision view ----------------------------------------------------------------


def test_a_requested_referral_shows_the_receiving_unit_what_it_needs_to_decide_only(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)

    view = get(client, rid, actors.norrmalm)

    assert view["disclosure"] == "decision"
    assert view["subject"] == {"district": NORRMALM, "age": view["subject"]["age"]}
    assert isinstance(view["subject"]["age"], int)
    assert view["subject"]["age"] >= 10
    assert (view["priority"], view["categories"], view["legal_basis"]) == (
        "urgent",
        ["drugs", "violence"],
        "duty_to_report",
    )
    assert (view["sending_unit"], view["receiving_unit"]) == ("ungdomsjouren", NORRMALM)
    assert view["due_at"]
    assert view["guardian"] is None
    assert (view["narrative"], view["place_met"]) == (None, None)
    # The sender, who wrote it, sees it whole.
    mine = get(client, rid, actors.worker)
    assert mine["disclosure"] == "full"
    assert mine["subject"]["name"] == SECRETS["name"]


def test_a_caseworker_learns_no_identity_through_any_path_until_accepting(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)

    before = every_path(client, rid, actors.norrmalm)
    assert leaks(before) == {}
    assert rid in before["list"]  # listed, as a decision view
    assert rid not in before["search"]  # no match on what the unit may not see
    assert '"withheld":true' in before["notes"].replace(" ", "").replace("\n", "")

    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    after = every_path(client, rid, actors.norrmalm)
    for path in ("get", "list", "search"):
        assert {"name", "personal_number", "guardian", "narrative"} <= leaked(after[path]), path
    assert leaked(after["notes"]) == {"note"}
    assert get(client, rid, actors.norrmalm)["disclosure"] == "full"


def test_the_inbox_lists_requested_referrals_as_decision_views(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    (item,) = [i for i in listing(client, actors.norrmalm)["items"] if i["id"] == rid]
    assert item["disclosure"] == "decision"
    assert "name" not in item["subject"]
    assert item["subject"]["age"] is not None


def test_search_by_personal_number_does_not_confirm_an_undisclosed_identity(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)

    def found(headers: Mapping[str, str]) -> list[str]:
        response = client.post(
            f"{REFERRALS}/search", json={"personal_number": NUMBER}, headers=dict(headers)
        )
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    assert found(actors.worker) == [rid]
    assert found(actors.norrmalm) == []  # the same answer as for a number never seen
    assert reveal(client, rid, actors.norrmalm).status_code == 200
    assert found(actors.norrmalm) == [rid]


def test_the_other_units_free_text_on_the_timeline_is_withheld_before_disclosure(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors, subject={"district": SODERMALM})
    moved = act(
        client,
        rid,
        "redirect",
        actors.sodermalm,
        {"unit": NORRMALM, "reason_code": "wrong_district", "reason_text": SECRETS["name"]},
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["disclosure"] == "decision"

    redirect = [e for e in events(client, rid, actors.norrmalm) if e["action"] == "redirect"]
    assert redirect[0]["reason_code"] == "wrong_district"
    assert redirect[0]["reason_text"] is None
    assert reveal(client, rid, actors.norrmalm).status_code == 200
    redirect = [e for e in events(client, rid, actors.norrmalm) if e["action"] == "redirect"]
    assert redirect[0]["reason_text"] == SECRETS["name"]


def test_the_receiving_units_own_notes_are_readable_before_disclosure(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    own = client.post(
        f"{REFERRALS}/{rid}/notes",
        json={"text": "Vår egen anteckning", "visibility": "internal"},
        headers=actors.norrmalm,
    )
    assert own.status_code == 201, own.get_json()
    notes = client.get(f"{REFERRALS}/{rid}/notes", headers=actors.norrmalm).get_json()["items"]
    texts = {n["author_side"]: (n["text"], n.get("withheld", False)) for n in notes}
    assert texts == {"receiver": ("Vår egen anteckning", False), "sender": (None, True)}


# --- decisions without accepting --------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "inputs"),
    [
        ("decline", {"reason_code": "no_capacity"}),
        ("redirect", {"reason_code": "wrong_district", "unit": SODERMALM}),
    ],
)
def test_a_declined_or_redirected_referral_never_disclosed_the_identity_to_that_unit(
    client: FlaskClient, actors: Actors, action: str, inputs: dict[str, str]
) -> None:
    rid = submitted(client, actors)
    decided = act(client, rid, action, actors.norrmalm, inputs)
    assert decided.status_code == 200, decided.get_json()
    assert not leaked(decided.get_data(as_text=True))
    if action == "decline":
        after = every_path(client, rid, actors.norrmalm)
        assert leaks(after) == {}
    else:
        # The new unit has seen nothing either.
        after = every_path(client, rid, actors.sodermalm)
        assert leaks(after) == {}


def test_a_redirect_after_a_reveal_discloses_nothing_to_the_new_unit(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    assert reveal(client, rid, actors.norrmalm).status_code == 200
    moved = act(
        client, rid, "redirect", actors.norrmalm, {"reason_code": "moved", "unit": SODERMALM}
    )
    assert moved.status_code == 200, moved.get_json()
    assert get(client, rid, actors.sodermalm)["disclosure"] == "decision"


def test_a_referral_redirected_back_must_be_disclosed_to_the_unit_again(
    client: FlaskClient, actors: Actors
) -> None:
    """norrmalm revealed, redirected to sodermalm, which sent it back: what norrmalm saw
    before is not disclosed again by the return; the disclosure went with the redirect."""
    rid = submitted(client, actors)
    assert reveal(client, rid, actors.norrmalm).status_code == 200
    away = {"reason_code": "moved", "unit": SODERMALM}
    assert act(client, rid, "redirect", actors.norrmalm, away).status_code == 200
    back = {"reason_code": "wrong_district", "unit": NORRMALM}
    assert act(client, rid, "redirect", actors.sodermalm, back).status_code == 200

    assert get(client, rid, actors.norrmalm)["disclosure"] == "decision"
    assert leaks(every_path(client, rid, actors.norrmalm)) == {}


# --- reveal -------------------------------------------------------------------------------


def test_a_reveal_discloses_to_the_whole_unit_with_its_reason_on_the_timeline_and_trail(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = submitted(client, actors)
    colleague = actors.caseworker(NORRMALM)

    revealed = reveal(client, rid, actors.norrmalm, "duplicate_check")

    assert revealed.status_code == 200, revealed.get_json()
    assert revealed.get_json()["disclosure"] == "full"
    assert revealed.get_json()["subject"]["personal_number"] == NUMBER
    assert revealed.get_json()["status"] == "requested"
    # Per unit: a colleague of the same unit sees it too; the decision is the unit's.
    assert get(client, rid, colleague)["subject"]["name"] == SECRETS["name"]
    # Both sides see that it happened, and why.
    for headers in (actors.norrmalm, actors.worker):
        (event,) = [e for e in events(client, rid, headers) if e["action"] == "reveal"]
        assert (event["reason_code"], event["actor_unit"]) == ("duplicate_check", NORRMALM)
        assert (event["from_status"], event["to_status"]) == ("requested", "requested")
    with database.sessions() as session:
        trail = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "referral:reveal")
        ).all()
    assert [(e.target_id, e.outcome, e.unit) for e in trail] == [(rid, "allowed", NORRMALM)]


def test_a_reveal_needs_a_known_reason_code(client: FlaskClient, actors: Actors) -> None:
    rid = submitted(client, actors)
    for bad in ({}, {"reason_code": "curious"}, {"reason_code": "known_to_unit", "x": 1}):
        response = client.post(f"{REFERRALS}/{rid}/reveal", json=bad, headers=actors.norrmalm)
        assert_problem(response, 422, VALIDATION)
    assert get(client, rid, actors.norrmalm)["disclosure"] == "decision"
    assert {r.value for r in RevealReason} == {
        "known_to_unit",
        "open_case_check",
        "duplicate_check",
        "risk_assessment",
    }


def test_only_the_receiving_unit_reveals_and_only_before_it_decides(
    client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    assert reveal(client, rid, actors.sodermalm).status_code == 404  # not its referral
    assert_problem(reveal(client, rid, actors.worker), 403, ACTION_NOT_ALLOWED)

    assert reveal(client, rid, actors.norrmalm).status_code == 200
    assert_problem(reveal(client, rid, actors.norrmalm), 409, CONFLICT, field="reason_code")

    other = submitted(client, actors)
    assert act(client, other, "accept", actors.norrmalm).status_code == 200
    assert_problem(reveal(client, other, actors.norrmalm), 409, CONFLICT, field="status")
    declined = submitted(client, actors)
    assert act(client, declined, "decline", actors.norrmalm, {"reason_code": "duplicate"})
    assert_problem(reveal(client, declined, actors.norrmalm), 409, CONFLICT, field="status")
    assert get(client, declined, actors.norrmalm)["disclosure"] == "decision"


def test_a_break_of_the_glass_cannot_stand_in_for_a_reveal(
    client: FlaskClient, actors: Actors
) -> None:
    """The receiving unit's own caseworker sending the emergency header still gets the
    decision view: the glass opens referrals of *other* units, and a reveal is audited
    with its own reason code."""
    rid = submitted(client, actors)
    response = client.get(
        f"{REFERRALS}/{rid}",
        headers={**actors.norrmalm, "X-Break-Glass-Reason": "risk_to_life"},
    )
    assert response.status_code == 200
    assert response.get_json()["disclosure"] == "decision"
    assert not leaked(response.get_data(as_text=True))


# --- the setting ----------------------------------------------------------------------------


@pytest.fixture
def on_receipt(settings: Settings, database: Database, clock: FakeClock) -> Flask:
    app = create_app(
        settings.with_overrides(disclosure_policy=DisclosurePolicy.ON_RECEIPT),
        database=database,
        clock=clock,
    )
    seed_units(app)
    return app


def test_on_receipt_discloses_everything_to_the_receiving_unit_at_once(
    on_receipt: Flask, actors: Actors
) -> None:
    client = on_receipt.test_client()
    rid = submitted(client, actors)

    view = get(client, rid, actors.norrmalm)

    assert view["disclosure"] == "full"
    assert view["subject"]["personal_number"] == NUMBER
    assert reveal(client, rid, actors.norrmalm).status_code == 409
    spec = client.get("/openapi.json").get_json()
    assert "This deployment: `on_receipt`" in spec["info"]["description"]


def test_the_spec_documents_the_policy_in_force(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert "This deployment: `on_accept`" in spec["info"]["description"]
    assert "REFERRALS_DISCLOSURE_POLICY" in spec["info"]["description"]
    out = spec["components"]["schemas"]["ReferralOut"]["properties"]["disclosure"]
    assert out["enum"] == ["full", "decision"]
    assert "REFERRALS_DISCLOSURE_POLICY" in out["description"]
    assert "/api/v1/referrals/{referral_id}/reveal" in spec["paths"]


def test_the_setting_is_read_from_the_environment() -> None:
    env = {"REFERRALS_ENV": "development"}
    assert Settings.from_env(env).disclosure_policy is DisclosurePolicy.ON_ACCEPT
    on_receipt = Settings.from_env({**env, "REFERRALS_DISCLOSURE_POLICY": "on_receipt"})
    assert on_receipt.disclosure_policy is DisclosurePolicy.ON_RECEIPT
    with pytest.raises(Exception, match="on_accept or on_receipt"):
        Settings.from_env({**env, "REFERRALS_DISCLOSURE_POLICY": "always"})


def test_create_keeps_working_for_the_sender(client: FlaskClient, actors: Actors) -> None:
    view = create(client, actors.worker)
    assert view["disclosure"] == "full"
