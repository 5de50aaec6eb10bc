"""Request validation: personal numbers, sizes, types, codes and unknown fields.

Every refusal is a 422 problem naming the field at fault, leaves the database exactly as it
was, and never repeats a personal number back to the client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.helpers import (
    INVALID_PERSONAL_NUMBER,
    MISSING_REQUIREMENT,
    REFERRALS,
    VALIDATION,
    act,
    assert_problem,
    counts,
    create,
    personal_number,
    referral_body,
    with_wrong_check_digit,
)


def post(client, actors, body):
    return client.post(REFERRALS, json=body, headers=actors.worker)


def refused(client, actors, database, body):
    """POST a body that must be refused; the database must be left exactly as it was."""
    before = counts(database)
    response = post(client, actors, body)
    assert response.status_code != 201, response.get_json()
    assert counts(database) == before
    return response


# --- personal numbers ------------------------------------------------------------------------

VALID = personal_number(2011, 3, 14)
INVALID_NUMBERS = {
    "bad-checksum": with_wrong_check_digit(VALID),
    "bad-checksum-10-digit": with_wrong_check_digit(personal_number(2011, 3, 14, form="10-")),
    "february-30": personal_number(2023, 2, 30),
    "february-29-no-leap-year": personal_number(2023, 2, 29, form="12-"),
    "day-92": personal_number(2010, 1, 92),
    "day-00": personal_number(2010, 1, 0),
    "month-13": personal_number(2010, 13, 1),
    "coordination-february-30": personal_number(2010, 2, 30, coordination=True),
    "future-date": personal_number(2026, 12, 1),
    "future-year": personal_number(2027, 1, 15, form="12-"),
    "11-digits": VALID[1:],
    "13-digits": VALID + "0",
    "letters": VALID[:8] + "AB" + VALID[10:],
    "plus-with-century": personal_number(1925, 3, 14, form="12-").replace("-", "+"),
    "arabic-indic-digits": VALID.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
    "spaces": " " * 12,
}
TOO_SHORT_OR_LONG = {
    "9-digits": VALID[3:],
    "14-digits": VALID + "00",
    "empty": "",
}


def assert_number_not_echoed(response: Any, number: str) -> None:
    text = response.get_data(as_text=True)
    if number.strip():
        assert number not in text
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) >= 6:
        assert digits not in text
        assert digits[-4:] + '"' not in text  # the serial and check digit


@pytest.mark.parametrize("number", INVALID_NUMBERS.values(), ids=INVALID_NUMBERS.keys())
def test_invalid_personal_number_is_422_without_echo(client, actors, database, number):
    response = refused(client, actors, database, referral_body(subject={"personal_number": number}))

    problem = assert_problem(
        response, 422, INVALID_PERSONAL_NUMBER, field="subject.personal_number"
    )
    assert problem["detail"].startswith("personal number")
    assert_number_not_echoed(response, number)


@pytest.mark.parametrize("number", TOO_SHORT_OR_LONG.values(), ids=TOO_SHORT_OR_LONG.keys())
def test_personal_number_of_impossible_length_is_422_without_echo(client, actors, database, number):
    response = refused(client, actors, database, referral_body(subject={"personal_number": number}))

    assert_problem(response, 422, VALIDATION, field="subject.personal_number")
    assert_number_not_echoed(response, number)


@pytest.mark.parametrize("number", [12345678901, ["191212121212"]], ids=["integer", "list"])
def test_personal_number_must_be_a_string(client, actors, database, number):
    response = refused(client, actors, database, referral_body(subject={"personal_number": number}))

    assert_problem(response, 422, VALIDATION, field="subject.personal_number")
    assert str(number) not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "number", [INVALID_NUMBERS["bad-checksum"], INVALID_NUMBERS["february-30"]], ids=str
)
def test_invalid_personal_number_in_a_patch_changes_nothing(client, actors, database, number):
    draft = create(client, actors.worker)
    before = counts(database)

    response = client.patch(
        f"{REFERRALS}/{draft['id']}",
        json={"subject": {"personal_number": number}},
        headers={**actors.worker, "If-Match": '"v1"'},
    )

    assert_problem(response, 422, INVALID_PERSONAL_NUMBER, field="subject.personal_number")
    assert_number_not_echoed(response, number)
    current = client.get(f"{REFERRALS}/{draft['id']}", headers=actors.worker).get_json()
    assert current == draft
    assert counts(database) == before


VALID_NUMBERS = [
    # (number as sent, stored 12-digit form, birth date)
    (personal_number(2011, 3, 14), "2011031423", "2011-03-14"),
    (personal_number(2011, 3, 14, form="12-"), "2011031423", "2011-03-14"),
    (personal_number(2011, 3, 14, form="10"), "2011031423", "2011-03-14"),
    (personal_number(2011, 3, 14, form="10-"), "2011031423", "2011-03-14"),
    # '+' marks someone aged 100 or more: the century before the obvious one.
    (personal_number(1925, 3, 14, form="10+"), "1925031423", "1925-03-14"),
    # A two-digit year not yet reached this century belongs to the last one.
    (personal_number(1927, 1, 15, form="10-"), "1927011523", "1927-01-15"),
    # Samordningsnummer: day + 60; stored as issued, birth date is the real day.
    (personal_number(2010, 5, 3, coordination=True), "2010056323", "2010-05-03"),
    (personal_number(2010, 5, 3, coordination=True, form="10-"), "2010056323", "2010-05-03"),
    (personal_number(2012, 2, 29, coordination=True), "2012028923", "2012-02-29"),
    # Born today.
    (personal_number(2026, 11, 26), "2026112623", "2026-11-26"),
]


@pytest.mark.parametrize(
    ("number", "prefix", "born"), VALID_NUMBERS, ids=[n for n, _, _ in VALID_NUMBERS]
)
def test_valid_personal_numbers_are_normalised(client, actors, number, prefix, born):
    response = post(client, actors, referral_body(subject={"personal_number": number}))

    assert response.status_code == 201, response.get_json()
    subject = response.get_json()["subject"]
    assert subject["personal_number"] == prefix + number[-2:]
    assert len(subject["personal_number"]) == 12
    assert subject["birth_date"] == born


def test_age_at_submission_comes_from_the_coordination_number(client, actors):
    number = personal_number(2010, 11, 27, coordination=True)  # turns 16 tomorrow

    response = post(client, actors, referral_body(subject={"personal_number": number}, submit=True))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject"]["birth_date"] == "2010-11-27"
    assert response.get_json()["subject"]["age"] == 15


@pytest.mark.parametrize(
    ("now", "age"),
    [
        (datetime(2026, 11, 26, 22, 30, tzinfo=UTC), 15),  # 23:30 in Stockholm
        (datetime(2026, 11, 26, 23, 30, tzinfo=UTC), 16),  # 00:30 on the birthday
    ],
    ids=["evening-before", "just-after-local-midnight"],
)
def test_age_follows_the_stockholm_calendar_day(client, actors, clock, now, age):
    """The units work on Stockholm days (acute deadlines already do); so do birthdays."""
    clock.now = now
    number = personal_number(2010, 11, 27)

    response = post(client, actors, referral_body(subject={"personal_number": number}, submit=True))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject"]["age"] == age


def test_birth_date_matching_the_personal_number_is_accepted(client, actors):
    subject = {"personal_number": VALID, "birth_date": "2011-03-14"}

    response = post(client, actors, referral_body(subject=subject))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject"]["birth_date"] == "2011-03-14"


@pytest.mark.parametrize(
    "number",
    [VALID, personal_number(2011, 3, 14, coordination=True)],
    ids=["personnummer", "samordningsnummer"],
)
def test_birth_date_mismatching_the_personal_number_is_422(client, actors, database, number):
    subject = {"personal_number": number, "birth_date": "2011-03-15"}

    response = refused(client, actors, database, referral_body(subject=subject))

    assert_problem(response, 422, MISSING_REQUIREMENT, field="subject.birth_date")
    assert_number_not_echoed(response, number)


def test_birth_date_alone_sets_the_age(client, actors):
    subject = {"personal_number": None, "birth_date": "2012-11-26"}

    response = post(client, actors, referral_body(subject=subject, submit=True))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject"]["age"] == 14
    assert "personal_number" not in response.get_json()["subject"]


@pytest.mark.parametrize(
    ("birth_date", "type_"),
    [("2026-11-27", MISSING_REQUIREMENT), ("2011-02-30", VALIDATION), ("14/03/2011", VALIDATION)],
    ids=["future", "impossible", "wrong-format"],
)
def test_invalid_birth_date_is_422(client, actors, database, birth_date, type_):
    subject = {"personal_number": None, "birth_date": birth_date}

    response = refused(client, actors, database, referral_body(subject=subject))

    assert_problem(response, 422, type_, field="subject.birth_date")


# --- sizes -----------------------------------------------------------------------------------

LIMITS = [
    # (field path, maximum length, body for a given value)
    ("subject.name", 200, lambda v: referral_body(subject={"name": v})),
    ("guardian.name", 200, lambda v: referral_body(guardian={"name": v})),
    ("place_met", 500, lambda v: referral_body(place_met=v)),
    ("narrative", 20_000, lambda v: referral_body(narrative=v)),
]


@pytest.mark.parametrize(("field", "limit", "make"), LIMITS, ids=[f for f, _, _ in LIMITS])
def test_oversized_field_is_422(client, actors, database, field, limit, make):
    response = refused(client, actors, database, make("å" * (limit + 1)))

    assert_problem(response, 422, VALIDATION, field=field)


@pytest.mark.parametrize(("field", "limit", "make"), LIMITS, ids=[f for f, _, _ in LIMITS])
def test_field_at_its_limit_is_accepted(client, actors, database, field, limit, make):
    before = counts(database)

    response = post(client, actors, make("å" * limit))

    assert response.status_code == 201, response.get_json()
    head, _, tail = field.partition(".")
    value = response.get_json()[head][tail] if tail else response.get_json()[head]
    assert value == "å" * limit
    assert counts(database) == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(("size", "status"), [(10_000, 201), (10_001, 422)])
def test_note_text_limit(client, actors, size, status):
    rid = create(client, actors.worker)["id"]

    response = client.post(
        f"{REFERRALS}/{rid}/notes",
        json={"text": "n" * size, "visibility": "shared"},
        headers=actors.worker,
    )

    if status == 422:
        assert_problem(response, 422, VALIDATION, field="text")
        notes = client.get(f"{REFERRALS}/{rid}/notes", headers=actors.worker).get_json()
        assert notes["items"] == []
    else:
        assert response.status_code == 201, response.get_json()
        assert len(response.get_json()["text"]) == size


@pytest.mark.parametrize(
    ("state", "action", "body", "field"),
    [
        (
            "requested",
            "decline",
            {"reason_code": "other", "reason_text": "r" * 2001},
            "reason_text",
        ),
        ("requested", "accept", {"assignee": "a" * 201}, "assignee"),
    ],
    ids=["reason_text", "assignee"],
)
def test_oversized_action_inputs_are_422(client, actors, database, state, action, body, field):
    referral = create(client, actors.worker, submit=True)
    before = counts(database)

    response = act(client, referral["id"], action, actors.norrmalm, body)

    assert_problem(response, 422, VALIDATION, field=field)
    assert counts(database) == before
    current = client.get(f"{REFERRALS}/{referral['id']}", headers=actors.norrmalm).get_json()
    assert current["status"] == state


# --- types and codes -------------------------------------------------------------------------

WRONG = [
    # (overrides, field named)
    ({"categories": "drugs"}, "categories"),
    ({"categories": [1]}, "categories.0"),
    ({"categories": ["drugs", "gambling"]}, "categories.1"),
    ({"categories": ["drugs"] * 11}, "categories"),
    ({"priority": 5}, "priority"),
    ({"priority": "asap"}, "priority"),
    ({"priority": "NORMAL"}, "priority"),
    ({"legal_basis": "gut_feeling"}, "legal_basis"),
    ({"legal_basis": ["consent"]}, "legal_basis"),
    ({"subject": ["Kim"]}, "subject"),
    ({"subject": "Kim"}, "subject"),
    ({"subject": {"name": 123}}, "subject.name"),
    ({"subject": {"name": ""}}, "subject.name"),
    ({"subject": {"district": "Norrmalm!"}}, "subject.district"),
    ({"subject": {"phone": "call me"}}, "subject.phone"),
    # A regex ending in "$" lets a trailing newline through; these must not pass.
    ({"subject": {"district": "norrmalm\n"}}, "subject.district"),
    ({"subject": {"phone": "070-000 00 00\n"}}, "subject.phone"),
    ({"guardian": {"phone": "+46 70 <script>"}}, "guardian.phone"),
    ({"guardian": "Vera"}, "guardian"),
    ({"consent": "yes"}, "consent"),
    ({"narrative": {"text": "nested"}}, "narrative"),
    ({"submit": "perhaps"}, "submit"),
]


@pytest.mark.parametrize(("overrides", "field"), WRONG, ids=[f"{f}={o!r}" for o, f in WRONG])
def test_wrong_type_or_unknown_code_is_422(client, actors, database, overrides, field):
    body = referral_body()
    body.update(overrides)

    response = refused(client, actors, database, body)

    assert_problem(response, 422, VALIDATION, field=field)


def test_all_errors_are_listed(client, actors, database):
    body = referral_body(priority="asap", legal_basis="gut_feeling", categories="drugs")

    response = refused(client, actors, database, body)

    problem = assert_problem(response, 422, VALIDATION)
    assert {e["field"] for e in problem["errors"]} == {"priority", "legal_basis", "categories"}


# --- unknown fields: nothing can be mass-assigned ----------------------------------------------

SMUGGLED = [
    ({"status": "accepted"}, "status"),
    ({"receiving_unit": "sodermalm"}, "receiving_unit"),
    ({"sending_unit": "norrmalm"}, "sending_unit"),
    ({"id": "00000000-0000-0000-0000-000000000001"}, "id"),
    ({"version": 7}, "version"),
    ({"due_at": "2030-01-01T00:00:00+00:00"}, "due_at"),
    ({"created_by": "someone"}, "created_by"),
    ({"outcome_code": "no_action_needed"}, "outcome_code"),
    ({"subject": {"age": 30}}, "subject.age"),
    ({"guardian": {"relation": "aunt"}}, "guardian.relation"),
]


@pytest.mark.parametrize(("extra", "field"), SMUGGLED, ids=[f for _, f in SMUGGLED])
def test_unknown_fields_on_create_are_422(client, actors, database, extra, field):
    body = referral_body(submit=True)
    for key, value in extra.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value

    response = refused(client, actors, database, body)

    assert_problem(response, 422, VALIDATION, field=field)


@pytest.mark.parametrize(("extra", "field"), [*SMUGGLED, ({"submit": True}, "submit")], ids=str)
def test_unknown_fields_on_patch_are_422(client, actors, database, extra, field):
    draft = create(client, actors.worker)
    before = counts(database)

    response = client.patch(
        f"{REFERRALS}/{draft['id']}", json=extra, headers={**actors.worker, "If-Match": '"v1"'}
    )

    assert_problem(response, 422, VALIDATION, field=field)
    assert client.get(f"{REFERRALS}/{draft['id']}", headers=actors.worker).get_json() == draft
    assert counts(database) == before
