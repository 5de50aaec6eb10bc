"""Search by personal number (blind index) and duplicate hints on submit, on both databases.

The personal number is the most identifying value the service holds.  Search finds exact
matches only, never outside the caller's scope, and the number travels only in a POST body:
it appears in no URL, no log line and no error body.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, select, update
from werkzeug.test import TestResponse

from referrals.db.models import Referral
from tests.api.helpers import (
    INVALID_PERSONAL_NUMBER,
    PROBLEM_JSON,
    REFERRALS,
    VALIDATION,
    Actors,
    act,
    assert_problem,
    bearer,
    create,
    personal_number,
    with_wrong_check_digit,
)

SEARCH = f"{REFERRALS}/search"
# One made-up person, in every written form; and people who are not them.
BIRTH = (2011, 9, 23)
NUMBER = personal_number(*BIRTH, "386")
FORMS = {form: personal_number(*BIRTH, "386", form=form) for form in ("12", "12-", "10", "10-")}
SAME_BIRTH_DATE = personal_number(*BIRTH, "394")
COORDINATION = personal_number(*BIRTH, "386", coordination=True)
OTHER_DAY = personal_number(2011, 9, 24, "386")
OTHER_REFERRER = "faltgruppen"


@pytest.fixture
def other_referrer(client: FlaskClient, dev_token: Any) -> dict[str, str]:
    """A youth worker at a second referring unit, registered through the API."""
    registered = client.post(
        "/api/v1/units",
        json={"id": OTHER_REFERRER, "name": "Fältgruppen (påhittad)", "kind": "referrer"},
        headers=bearer(dev_token("admin")),
    )
    assert registered.status_code == 201, registered.get_json()
    return bearer(dev_token("youth_worker", OTHER_REFERRER))


def referral(number: str | None = NUMBER, **overrides: Any) -> dict[str, Any]:
    return {
        "subject": {
            "name": "Sökbar Påhittadsson",
            "personal_number": number,
            "phone": "070-123 45 67",
            "district": "norrmalm",
        },
        "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-765 43 21"},
        "categories": ["criminality"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "place_met": "Påhittade parken",
        "narrative": "Påhittad: sågs flera kvällar i rad.",
        **overrides,
    }


def reveal(client: FlaskClient, rid: str, headers: Mapping[str, str]) -> TestResponse:
    """Two-phase disclosure: the receiving unit reveals the identity before deciding."""
    return client.post(
        f"{REFERRALS}/{rid}/reveal", json={"reason_code": "known_to_unit"}, headers=dict(headers)
    )


def search(client: FlaskClient, number: Any, headers: Mapping[str, str]) -> TestResponse:
    return client.post(SEARCH, json={"personal_number": number}, headers=dict(headers))


def found(client: FlaskClient, number: str, headers: Mapping[str, str]) -> list[str]:
    response = search(client, number, headers)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return sorted(item["id"] for item in response.get_json()["items"])


def digits_forms(*numbers: str) -> set[str]:
    """Every way a number could be written down: as given, and its 10/12-digit forms."""
    forms = set()
    for number in numbers:
        compact = number.replace("-", "").replace("+", "")
        forms |= {number, compact, compact[-10:], f"{compact[-10:-4]}-{compact[-4:]}"}
    return forms


def assert_absent(text: str, numbers: Iterable[str]) -> None:
    for form in numbers:
        assert form not in text, f"{form!r} appears in {text!r}"


# --- exact match ----------------------------------------------------------------------------


def test_every_written_form_of_the_number_finds_the_referral(
    client: FlaskClient, actors: Actors
) -> None:
    rid = create(client, actors.worker, **referral(FORMS["10-"]))["id"]
    for form in FORMS.values():
        response = search(client, form, actors.worker)
        assert response.status_code == 200
        [item] = response.get_json()["items"]
        assert item["id"] == rid
        # The whole referral, as GET shows it, with the number in its normalised form.
        assert item["subject"]["personal_number"] == FORMS["12"]
        assert item["subject"]["name"] == "Sökbar Påhittadsson"
        assert item["narrative"] == "Påhittad: sågs flera kvällar i rad."
        assert item["erased"] is False


def test_only_the_exact_number_matches(client: FlaskClient, actors: Actors) -> None:
    rid = create(client, actors.worker, **referral())["id"]
    other = create(client, actors.worker, **referral(SAME_BIRTH_DATE))["id"]
    create(client, actors.worker, **referral(None))  # no identity at all

    assert found(client, NUMBER, actors.worker) == [rid]
    assert found(client, SAME_BIRTH_DATE, actors.worker) == [other]
    # The same digits as a coordination number, or the next day: other people.
    assert found(client, COORDINATION, actors.worker) == []
    assert found(client, OTHER_DAY, actors.worker) == []


def test_a_blind_index_collision_is_never_reported_as_a_match(
    client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    """Tags are short on purpose, so different numbers share them; a shared tag alone must
    neither find a referral nor flag it as a duplicate."""
    rid = create(client, actors.worker, **referral(submit=True))["id"]
    impostor = create(client, actors.worker, **referral(SAME_BIRTH_DATE, submit=True))["id"]
    tag = db_connection.scalar(
        select(Referral.personal_number_index).where(Referral.id == uuid.UUID(rid))
    )
    assert tag
    db_connection.execute(
        update(Referral).where(Referral.id == uuid.UUID(impostor)).values(personal_number_index=tag)
    )

    assert found(client, NUMBER, actors.worker) == [rid]
    # Search finds only referrals disclosed to the caller (tests/api/test_disclosure.py).
    for revealed in (rid, impostor):
        assert reveal(client, revealed, actors.norrmalm).status_code == 200
    assert found(client, NUMBER, actors.norrmalm) == [rid]
    duplicate = create(client, actors.worker, **referral(submit=True))
    assert duplicate["possible_duplicates"] == [{"id": rid, "status": "requested"}]


# --- scope ----------------------------------------------------------------------------------


def test_search_never_crosses_the_callers_scope(
    client: FlaskClient, actors: Actors, other_referrer: dict[str, str], dev_token: Any
) -> None:
    submitted = create(client, actors.worker, **referral(submit=True))["id"]
    draft = create(client, actors.worker, **referral())["id"]
    theirs = create(client, other_referrer, **referral(submit=True))["id"]

    assert found(client, NUMBER, actors.worker) == sorted([submitted, draft])
    assert found(client, NUMBER, other_referrer) == [theirs]
    # The receiving unit sees what was submitted to it and disclosed to it, never a draft.
    assert found(client, NUMBER, actors.norrmalm) == []
    for revealed in (submitted, theirs):
        assert reveal(client, revealed, actors.norrmalm).status_code == 200
    assert found(client, NUMBER, actors.norrmalm) == sorted([submitted, theirs])
    for unit in (actors.sodermalm, actors.kungsholmen, actors.intake):
        assert found(client, NUMBER, unit) == []

    # Roles without case access are refused outright, whatever the number.
    for role in ("auditor", "admin"):
        response = search(client, NUMBER, bearer(dev_token(role)))
        assert response.status_code == 403
        assert response.mimetype == PROBLEM_JSON
        assert_absent(response.get_data(as_text=True), digits_forms(NUMBER))
    assert search(client, NUMBER, {}).status_code == 401

    # A redirect moves the referral, and search follows it.
    redirected = act(
        client,
        submitted,
        "redirect",
        actors.norrmalm,
        {"unit": "sodermalm", "reason_code": "moved"},
    )
    assert redirected.status_code == 200, redirected.get_json()
    assert found(client, NUMBER, actors.norrmalm) == [theirs]
    # The new unit finds it once it is disclosed to it; a redirect discloses nothing.
    assert found(client, NUMBER, actors.sodermalm) == []
    assert reveal(client, submitted, actors.sodermalm).status_code == 200
    assert found(client, NUMBER, actors.sodermalm) == [submitted]


# --- the number in no URL, log line or error body -------------------------------------------


def test_the_number_is_never_part_of_a_url(client: FlaskClient, actors: Actors) -> None:
    create(client, actors.worker, **referral(submit=True))
    for path in (SEARCH, REFERRALS):
        for name in ("personal_number", "q"):
            response = client.get(path, query_string={name: NUMBER}, headers=actors.worker)
            assert response.status_code in {404, 405, 422}, (path, name, response.status_code)
            assert response.mimetype == PROBLEM_JSON
            assert_absent(response.get_data(as_text=True), digits_forms(NUMBER))
    # Nor does a number in the query string of the real search count for anything.
    response = client.post(
        SEARCH, query_string={"personal_number": NUMBER}, json={}, headers=actors.worker
    )
    assert_problem(response, 422, VALIDATION, field="personal_number")

    answered = search(client, NUMBER, actors.worker)
    assert answered.status_code == 200
    for name, value in answered.headers.items():
        assert_absent(f"{name}: {value}", digits_forms(NUMBER))

    # The published contract agrees: a body, no parameter, and no other way in.
    spec = client.get("/openapi.json").get_json()
    operations = spec["paths"]["/api/v1/referrals/search"]
    assert set(operations) - {"parameters"} == {"post"}
    post = operations["post"]
    assert [p for p in post.get("parameters", []) if p["in"] in {"query", "path"}] == []
    assert "application/json" in post["requestBody"]["content"]
    for path, item in spec["paths"].items():
        assert "personal" not in path
        for operation in item.values():
            parameters = operation.get("parameters", []) if isinstance(operation, dict) else []
            assert all("personal" not in p.get("name", "") for p in parameters), path


INVALID = [
    with_wrong_check_digit(NUMBER),
    with_wrong_check_digit(FORMS["10-"]),
    "20110932-3861",  # no such date
    "20990923-3862",  # in the future
    "2011-09-23-386",  # not a personal number's shape
    "201109233860123",  # too long
    "11092338",  # too short
]


@pytest.mark.parametrize("value", INVALID)
def test_an_invalid_number_is_refused_without_being_repeated(
    client: FlaskClient, actors: Actors, value: str
) -> None:
    response = search(client, value, actors.worker)
    assert response.status_code == 422
    body = response.get_json()
    assert body["type"] in {INVALID_PERSONAL_NUMBER, VALIDATION}
    assert body["errors"][0]["field"] == "personal_number"
    assert body["detail"]
    assert_absent(response.get_data(as_text=True), digits_forms(value) | digits_forms(NUMBER))


def test_other_malformed_bodies_do_not_echo_the_number(client: FlaskClient, actors: Actors) -> None:
    numeric = client.post(SEARCH, json={"personal_number": int(NUMBER)}, headers=actors.worker)
    assert_problem(numeric, 422, VALIDATION, field="personal_number")
    extra = client.post(
        SEARCH, json={"personal_number": NUMBER, "also": FORMS["10-"]}, headers=actors.worker
    )
    assert_problem(extra, 422, VALIDATION, field="also")
    listed = client.post(SEARCH, json={"personal_number": [NUMBER]}, headers=actors.worker)
    assert_problem(listed, 422, VALIDATION, field="personal_number")
    for response in (numeric, extra, listed):
        assert_absent(response.get_data(as_text=True), digits_forms(NUMBER))


def test_no_log_line_carries_the_number(
    client: FlaskClient, actors: Actors, dev_token: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create(client, actors.worker, **referral(submit=True))
    create(client, actors.worker, **referral(SAME_BIRTH_DATE))
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="referrals")
    wrong = with_wrong_check_digit(NUMBER)

    for form in FORMS.values():
        assert search(client, form, actors.worker).status_code == 200
    assert search(client, NUMBER, actors.norrmalm).status_code == 200
    assert search(client, SAME_BIRTH_DATE, actors.sodermalm).status_code == 200
    assert search(client, wrong, actors.worker).status_code == 422
    assert search(client, "20110932-3861", actors.worker).status_code == 422
    assert search(client, NUMBER, bearer(dev_token("auditor"))).status_code == 403
    assert search(client, NUMBER, {"Authorization": "Bearer not-a-token"}).status_code == 401
    assert client.get(SEARCH, query_string={"personal_number": NUMBER}).status_code in {404, 405}
    submitted = client.post(
        REFERRALS, json=referral(FORMS["10-"], submit=True), headers=actors.worker
    )
    assert submitted.get_json()["possible_duplicates"]

    # The capture works: the rejected token above was logged.
    assert any(r.getMessage() == "authentication failed" for r in caplog.records)
    forbidden = digits_forms(NUMBER, SAME_BIRTH_DATE, wrong, "20110932-3861")
    for record in caplog.records:
        assert_absent(record.getMessage(), forbidden)
        assert_absent(repr(record.args), forbidden)
        assert_absent(repr(vars(record)), forbidden)


# --- duplicates on submit -------------------------------------------------------------------


def duplicates(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    listed = view["possible_duplicates"]
    assert isinstance(listed, list)
    for entry in listed:
        assert set(entry) == {"id", "status"}, entry  # id and status, nothing personal
    return sorted(listed, key=lambda entry: entry["id"])


def test_submitting_again_for_the_same_person_reports_the_open_referral(
    client: FlaskClient, actors: Actors
) -> None:
    first = create(client, actors.worker, **referral(FORMS["12"], submit=True))
    assert duplicates(first) == []
    second = create(client, actors.worker, **referral(FORMS["10-"], submit=True))
    assert duplicates(second) == [{"id": first["id"], "status": "requested"}]

    accepted = act(client, first["id"], "accept", actors.norrmalm)
    assert accepted.status_code == 200
    draft = create(client, actors.worker, **referral(FORMS["10"]))
    submitted = act(client, draft["id"], "submit", actors.worker)
    assert submitted.status_code == 200, submitted.get_json()
    assert duplicates(submitted.get_json()) == sorted(
        [{"id": first["id"], "status": "accepted"}, {"id": second["id"], "status": "requested"}],
        key=lambda entry: entry["id"],
    )


def test_final_drafts_and_other_people_are_not_reported(
    client: FlaskClient, actors: Actors
) -> None:
    declined = create(client, actors.worker, **referral(submit=True))["id"]
    response = act(client, declined, "decline", actors.norrmalm, {"reason_code": "no_capacity"})
    assert response.status_code == 200
    cancelled = create(client, actors.worker, **referral(submit=True))["id"]
    response = act(client, cancelled, "cancel", actors.worker, {"reason_code": "no_longer_needed"})
    assert response.status_code == 200
    create(client, actors.worker, **referral())  # a draft
    create(client, actors.worker, **referral(SAME_BIRTH_DATE, submit=True))
    create(client, actors.worker, **referral(None, submit=True))

    assert duplicates(create(client, actors.worker, **referral(submit=True))) == []
    # No personal number: nothing to compare, nothing reported.
    assert duplicates(create(client, actors.worker, **referral(None, submit=True))) == []


def test_another_referring_unit_is_not_told(
    client: FlaskClient, actors: Actors, other_referrer: dict[str, str]
) -> None:
    ours = create(client, actors.worker, **referral(submit=True))
    theirs = create(client, other_referrer, **referral(submit=True))
    assert duplicates(theirs) == []
    again = create(client, other_referrer, **referral(submit=True))
    assert duplicates(again) == [{"id": theirs["id"], "status": "requested"}]
    mine_again = create(client, actors.worker, **referral(FORMS["10-"], submit=True))
    assert duplicates(mine_again) == [{"id": ours["id"], "status": "requested"}]
