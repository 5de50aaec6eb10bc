"""Routing through the HTTP API (issue 5): where a submitted referral goes, and why.

A realistic rule set is installed, then a table of referrals is submitted by the youth
worker of ungdomsjouren.  Each must land at the expected unit by the expected rule, the
decision must be recorded on the referral and its submit event, and the preview of the
very same body must give the same answer with an explanation of every rule tried.

Ages follow the app clock's Stockholm date, 2026-11-26; birth dates are computed from it.
All names are made up and every personal number is a test number with a correct Luhn
check digit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from referrals.db.engine import Database
from referrals.db.models import (
    AuditEvent,
    OutboxMessage,
    Referral,
    RoutingRuleSet,
    TimelineEvent,
    Unit,
)
from referrals.domain import routing as engine
from referrals.domain.codes import Category
from referrals.domain.personal_number import age_on, parse_personal_number
from referrals.runtime import OPERATOR, Runtime
from referrals.services import routing as routing_service
from tests.api.helpers import (
    API,
    CONFLICT,
    INTAKE,
    KUNGSHOLMEN,
    NORRMALM,
    NOT_FOUND,
    REFERRALS,
    REFERRER,
    SODERMALM,
    VALIDATION,
    Actors,
    assert_problem,
    bearer,
)
from tests.support.clock import FakeClock

RULES = f"{API}/routing-rules"
VERSIONS = f"{RULES}/versions"
PREVIEW = f"{API}/routing/preview"
UNITS = f"{API}/units"
INVALID_RULE_SET = "urn:referrals:problem:invalid-rule-set"
FORBIDDEN = "urn:referrals:problem:forbidden"
INSUFFICIENT_SCOPE = "urn:referrals:problem:insufficient-scope"

# The clock's date where the units work (FakeClock starts 2026-11-26 09:00 UTC).
TODAY = date(2026, 11, 26)

# The rule set of these tests: (position, unit, match).
RULE_SET: list[dict[str, Any]] = [
    {
        "position": 10,
        "unit": KUNGSHOLMEN,
        "match": {
            "priorities": ["acute"],
            "categories": ["violence"],
            "min_age": 0,
            "max_age": 17,
        },
    },
    {"position": 20, "unit": NORRMALM, "match": {"districts": ["norrmalm", "ostermalm"]}},
    {
        "position": 30,
        "unit": SODERMALM,
        "match": {"districts": ["sodermalm"], "min_age": 12, "max_age": 17},
    },
    {"position": 40, "unit": SODERMALM, "match": {"categories": ["sexual_exploitation"]}},
    {
        "position": 50,
        "unit": KUNGSHOLMEN,
        "match": {"priorities": ["urgent"], "districts": ["kungsholmen"]},
    },
    {"position": 1000, "unit": INTAKE, "match": {}},
]
POSITIONS = [rule["position"] for rule in RULE_SET]


# --- personal numbers and ages ----------------------------------------------------------


def luhn(nine_digits: str) -> str:
    """Skatteverket's check digit over YYMMDDNNN (weights 2, 1, 2, 1, ...)."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def pnr(born: date, serial: str = "382", *, coordination: bool = False, form: str = "12") -> str:
    """A Luhn-valid personnummer (or samordningsnummer: day + 60) for ``born``."""
    day = born.day + 60 if coordination else born.day
    yymmdd = f"{born.year % 100:02d}{born.month:02d}{day:02d}"
    last4 = serial + luhn(yymmdd + serial)
    if form == "10-":
        return f"{yymmdd}-{last4}"
    return f"{born.year // 100:02d}{yymmdd}{last4}"


def born(age: int, *, birthday_in: int = 0) -> date:
    """A birth date making someone ``age`` today; ``birthday_in`` days until the next
    birthday (1: the birthday is tomorrow, so still ``age``; 0: it is today)."""
    birthday_this_year = date(TODAY.year - age, TODAY.month, TODAY.day)
    if birthday_in == 0:
        return birthday_this_year
    return date(TODAY.year - age - 1, TODAY.month, TODAY.day) + timedelta(days=birthday_in)


def test_the_date_helpers_give_the_ages_they_claim() -> None:
    assert age_on(born(17, birthday_in=1), TODAY) == 17
    assert age_on(born(18), TODAY) == 18
    assert age_on(born(11, birthday_in=1), TODAY) == 11
    assert age_on(born(0), TODAY) == 0
    for number, age, coordination in (
        (pnr(born(15)), 15, False),
        (pnr(born(12), coordination=True), 12, True),
        (pnr(born(17, birthday_in=1), form="10-"), 17, False),
    ):
        parsed = parse_personal_number(number, TODAY)  # raises on a wrong check digit
        assert (age_on(parsed.birth_date, TODAY), parsed.coordination) == (age, coordination)


# --- bodies -----------------------------------------------------------------------------


def body_for(
    *,
    district: str | None = None,
    birth_date: date | None = None,
    personal_number: str | None = None,
    categories: tuple[str, ...] = ("drugs",),
    priority: str | None = "normal",
    anonymous: bool = False,
) -> dict[str, Any]:
    subject: dict[str, Any] = {"name": "Robin Provsson"}
    if district is not None:
        subject["district"] = district
    if birth_date is not None:
        subject["birth_date"] = birth_date.isoformat()
    if personal_number is not None:
        subject["personal_number"] = personal_number
    body: dict[str, Any] = {
        "subject": subject,
        "categories": list(categories),
        "legal_basis": "duty_to_report",
        "narrative": "Met outside the youth centre; asked for help.",
    }
    if priority is not None:
        body["priority"] = priority
    if anonymous:  # no subject at all: nothing known of the young person
        del body["subject"]
    return body


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def admin(dev_token: Any) -> dict[str, str]:
    return bearer(dev_token("admin"))


def install(app: Flask, bodies: Sequence[Mapping[str, Any]]) -> int:
    """Install a whole rule set as the operator; the version now in force."""
    runtime: Runtime = app.extensions["referrals"]
    with runtime.unit_of_work() as uow:
        version = routing_service.install(uow, runtime.context(OPERATOR), bodies)
    if version is None:  # already exactly this set
        with runtime.unit_of_work() as uow:
            ruleset = routing_service.current(uow)
            assert ruleset is not None
            version = ruleset.version
    return version


@dataclass(frozen=True)
class Installed:
    version: int
    ids: dict[int, str]  # position -> rule id


def current_rules(client: FlaskClient, admin: Mapping[str, str], **query: Any) -> dict[str, Any]:
    response = client.get(RULES, headers=dict(admin), query_string=query)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def version_list(client: FlaskClient, admin: Mapping[str, str]) -> list[dict[str, Any]]:
    response = client.get(VERSIONS, headers=dict(admin))
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert isinstance(items, list)
    return items


@pytest.fixture
def ruleset(app: Flask, client: FlaskClient, admin: dict[str, str]) -> Installed:
    version = install(app, RULE_SET)
    assert version == 2  # the demo seed is version 1
    listed = current_rules(client, admin)
    assert listed["version"] == version
    assert [r["position"] for r in listed["items"]] == POSITIONS
    return Installed(version, {r["position"]: r["id"] for r in listed["items"]})


def submit(client: FlaskClient, actors: Actors, body: Mapping[str, Any]) -> dict[str, Any]:
    response = client.post(REFERRALS, json={**body, "submit": True}, headers=actors.worker)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["status"] == "requested", created
    assert isinstance(created, dict)
    return created


def preview(client: FlaskClient, headers: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    return client.post(PREVIEW, json=dict(body), headers=dict(headers))


def submit_event(client: FlaskClient, actors: Actors, referral_id: str) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{referral_id}/events", headers=actors.worker)
    assert response.status_code == 200, response.get_json()
    submits = [e for e in response.get_json()["items"] if e["action"] == "submit"]
    assert len(submits) == 1, submits
    event = submits[0]
    assert isinstance(event, dict)
    return event


def assert_explained(explanation: list[dict[str, Any]], ids: dict[int, str], position: int) -> None:
    """Every rule before the winner tried and refused with a reason; the winner last."""
    expected = [p for p in POSITIONS if p <= position]
    assert [e["position"] for e in explanation] == expected, explanation
    assert [e["rule_id"] for e in explanation] == [ids[p] for p in expected]
    units = {rule["position"]: rule["unit"] for rule in RULE_SET}
    assert [e["unit"] for e in explanation] == [units[p] for p in expected]
    *refused, chosen = explanation
    for entry in refused:
        assert entry["matched"] is False, entry
        assert entry["reasons"], entry
        assert all(isinstance(r, str) and r for r in entry["reasons"]), entry
    assert chosen["matched"] is True, chosen
    assert chosen["reasons"] == [], chosen


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    body: dict[str, Any]
    unit: str
    position: int


def case(unit: str, position: int, **body: Any) -> Case:
    return Case(body_for(**body), unit, position)


ACUTE_VIOLENCE: dict[str, Any] = {"priority": "acute", "categories": ("violence",)}

CASES = [
    # districts
    pytest.param(case(NORRMALM, 20, district="norrmalm", birth_date=born(15)), id="norrmalm"),
    pytest.param(
        case(NORRMALM, 20, district="ostermalm", birth_date=born(15)),
        id="ostermalm-is-served-by-norrmalm",
    ),
    pytest.param(
        case(INTAKE, 1000, district="vasastan", birth_date=born(15)), id="unknown-district"
    ),
    pytest.param(case(INTAKE, 1000, birth_date=born(15)), id="no-district"),
    pytest.param(
        case(INTAKE, 1000, district="kungsholmen", birth_date=born(15)),
        id="kungsholmen-normal-has-no-rule",
    ),
    # the sodermalm age band 12-17, at its edges
    pytest.param(
        case(SODERMALM, 30, district="sodermalm", birth_date=born(12)),
        id="sodermalm-12th-birthday-today",
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", birth_date=born(11, birthday_in=1)),
        id="sodermalm-11-turning-12-tomorrow",
    ),
    pytest.param(
        case(SODERMALM, 30, district="sodermalm", birth_date=born(17, birthday_in=1)),
        id="sodermalm-17-turning-18-tomorrow",
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", birth_date=born(18)),
        id="sodermalm-18th-birthday-today",
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", birth_date=born(25)), id="sodermalm-adult"
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", birth_date=born(0)), id="sodermalm-born-today"
    ),
    # the acute violence rule for ages 0-17 comes first
    pytest.param(
        case(
            KUNGSHOLMEN,
            10,
            district="norrmalm",
            birth_date=born(17, birthday_in=1),
            **ACUTE_VIOLENCE,
        ),
        id="acute-violence-17-beats-district",
    ),
    pytest.param(
        case(NORRMALM, 20, district="norrmalm", birth_date=born(18), **ACUTE_VIOLENCE),
        id="acute-violence-18-falls-to-district",
    ),
    pytest.param(
        case(KUNGSHOLMEN, 10, birth_date=born(0), **ACUTE_VIOLENCE),
        id="acute-violence-age-0-no-district",
    ),
    pytest.param(
        case(
            KUNGSHOLMEN,
            10,
            district="sodermalm",
            birth_date=born(12),
            priority="acute",
            categories=("drugs", "violence", "school_absence"),
        ),
        id="acute-categories-overlap",
    ),
    pytest.param(
        case(
            SODERMALM,
            30,
            district="sodermalm",
            birth_date=born(14),
            priority="acute",
            categories=("drugs", "criminality"),
        ),
        id="acute-no-category-overlap",
    ),
    pytest.param(
        case(INTAKE, 1000, birth_date=born(10), priority="urgent", categories=("violence",)),
        id="violence-but-urgent",
    ),
    # missing identity: the age is unknown, so no rule with an age range matches
    pytest.param(
        case(NORRMALM, 20, district="norrmalm", **ACUTE_VIOLENCE),
        id="acute-violence-age-unknown-falls-to-district",
    ),
    pytest.param(case(INTAKE, 1000, **ACUTE_VIOLENCE), id="acute-violence-nothing-known"),
    pytest.param(
        case(INTAKE, 1000, anonymous=True, **ACUTE_VIOLENCE), id="acute-violence-no-subject"
    ),
    pytest.param(
        case(SODERMALM, 40, anonymous=True, categories=("sexual_exploitation",)),
        id="exploitation-no-subject",
    ),
    pytest.param(case(INTAKE, 1000, district="sodermalm"), id="sodermalm-age-unknown"),
    pytest.param(
        case(SODERMALM, 40, district="sodermalm", categories=("sexual_exploitation",)),
        id="sodermalm-age-unknown-exploitation",
    ),
    # categories
    pytest.param(
        case(
            SODERMALM,
            40,
            district="sodermalm",
            birth_date=born(11, birthday_in=1),
            categories=("sexual_exploitation",),
        ),
        id="exploitation-under-the-sodermalm-band",
    ),
    pytest.param(
        case(SODERMALM, 40, district="vasastan", categories=("sexual_exploitation",)),
        id="exploitation-unknown-district",
    ),
    pytest.param(
        case(
            SODERMALM,
            40,
            birth_date=born(16),
            categories=("drugs", "sexual_exploitation", "homelessness"),
        ),
        id="exploitation-among-others",
    ),
    pytest.param(
        case(
            NORRMALM,
            20,
            district="ostermalm",
            birth_date=born(16),
            categories=("school_absence", "sexual_exploitation"),
        ),
        id="district-rule-before-exploitation",
    ),
    # priorities
    pytest.param(
        case(KUNGSHOLMEN, 50, district="kungsholmen", birth_date=born(30), priority="urgent"),
        id="kungsholmen-urgent",
    ),
    pytest.param(
        case(INTAKE, 1000, district="kungsholmen", birth_date=born(15), priority="acute"),
        id="kungsholmen-acute-not-violence",
    ),
    pytest.param(
        case(KUNGSHOLMEN, 50, district="kungsholmen", priority="urgent"),
        id="kungsholmen-urgent-age-unknown",
    ),
    pytest.param(
        case(NORRMALM, 20, district="norrmalm", birth_date=born(15), priority="urgent"),
        id="norrmalm-urgent",
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", birth_date=born(20), priority="urgent"),
        id="sodermalm-urgent-adult",
    ),
    pytest.param(
        case(
            SODERMALM,
            40,
            district="kungsholmen",
            birth_date=born(16),
            priority="urgent",
            categories=("sexual_exploitation",),
        ),
        id="exploitation-before-kungsholmen-urgent",
    ),
    pytest.param(
        case(INTAKE, 1000, district="kungsholmen", birth_date=born(16), priority=None),
        id="priority-left-out-is-normal",
    ),
    # the age from a personal number or a coordination number
    pytest.param(
        case(SODERMALM, 30, district="sodermalm", personal_number=pnr(born(15))),
        id="personal-number-15",
    ),
    pytest.param(
        case(
            SODERMALM,
            30,
            district="sodermalm",
            personal_number=pnr(born(17, birthday_in=1), form="10-"),
        ),
        id="personal-number-10-digits-17-turning-18-tomorrow",
    ),
    pytest.param(
        case(INTAKE, 1000, district="sodermalm", personal_number=pnr(born(18))),
        id="personal-number-18-today",
    ),
    pytest.param(
        case(
            SODERMALM,
            30,
            district="sodermalm",
            personal_number=pnr(born(12), coordination=True),
        ),
        id="samordningsnummer-12-today",
    ),
    pytest.param(
        case(
            INTAKE,
            1000,
            district="sodermalm",
            personal_number=pnr(born(11, birthday_in=1), coordination=True),
        ),
        id="samordningsnummer-11",
    ),
    pytest.param(
        case(
            KUNGSHOLMEN,
            10,
            district="norrmalm",
            personal_number=pnr(born(16), "516"),
            birth_date=born(16),
            **ACUTE_VIOLENCE,
        ),
        id="personal-number-and-birth-date-agree",
    ),
]


@pytest.mark.parametrize("expected", CASES)
def test_a_submitted_referral_goes_where_the_preview_says(
    client: FlaskClient, actors: Actors, ruleset: Installed, expected: Case
) -> None:
    rule_id = ruleset.ids[expected.position]

    created = submit(client, actors, expected.body)
    assert created["receiving_unit"] == expected.unit
    assert created["routing"] == {"rule_id": rule_id, "ruleset_version": ruleset.version}

    event = submit_event(client, actors, created["id"])
    assert event["rule_id"] == rule_id
    assert event["ruleset_version"] == ruleset.version
    assert event["to_unit"] == expected.unit

    answer = preview(client, actors.worker, expected.body)
    assert answer.status_code == 200, answer.get_json()
    shown = answer.get_json()
    assert shown["unit"] == expected.unit
    assert shown["rule_id"] == rule_id
    assert shown["ruleset_version"] == ruleset.version
    assert_explained(shown["explanation"], ruleset.ids, expected.position)


def test_the_table_covers_every_rule() -> None:
    hit = {cast(Case, param.values[0]).position for param in CASES}
    assert hit == set(POSITIONS)
    assert len(CASES) >= 30


def test_explanations_name_coarse_facts_only(
    client: FlaskClient, actors: Actors, ruleset: Installed
) -> None:
    number = pnr(born(17, birthday_in=1), "617")
    body = body_for(district="vasastan", personal_number=number, categories=("drugs",))
    answer = preview(client, actors.worker, body)
    assert answer.status_code == 200
    shown = answer.get_json()
    assert shown["unit"] == INTAKE
    reasons = {p["position"]: p["reasons"] for p in shown["explanation"]}
    assert reasons == {
        10: [
            "no category is one of violence",
            "priority normal is not one of acute",
        ],
        20: ["district vasastan is not one of norrmalm, ostermalm"],
        30: ["district vasastan is not one of sodermalm"],
        40: ["no category is one of sexual_exploitation"],
        50: [
            "district vasastan is not one of kungsholmen",
            "priority normal is not one of urgent",
        ],
        1000: [],
    }
    text = answer.get_data(as_text=True)
    for personal in (number, number[2:], born(17, birthday_in=1).isoformat(), "Robin Provsson"):
        assert personal not in text


def test_age_unknown_is_the_reason_given(
    client: FlaskClient, actors: Actors, ruleset: Installed
) -> None:
    answer = preview(client, actors.worker, body_for(district="sodermalm"))
    shown = answer.get_json()
    reasons = {p["position"]: p["reasons"] for p in shown["explanation"]}
    assert reasons[30] == ["the subject's age is unknown"]
    answer = preview(client, actors.worker, body_for(**ACUTE_VIOLENCE))
    reasons = {p["position"]: p["reasons"] for p in answer.get_json()["explanation"]}
    assert reasons[10] == ["the subject's age is unknown"]
    assert reasons[20] == ["the referral names no district"]


@pytest.mark.parametrize(
    ("hour_utc", "unit"),
    [
        pytest.param(22, SODERMALM, id="22:59-utc-is-23:59-in-stockholm-still-17"),
        pytest.param(23, INTAKE, id="23:00-utc-is-midnight-in-stockholm-now-18"),
    ],
)
def test_ages_follow_the_stockholm_date(
    client: FlaskClient,
    actors: Actors,
    ruleset: Installed,
    clock: FakeClock,
    hour_utc: int,
    unit: str,
) -> None:
    # CET (UTC+1) in November: 23:00 UTC on the 26th is already the 27th in Stockholm.
    clock.now = clock.now.replace(hour=hour_utc, minute=59 if hour_utc == 22 else 0)
    body = body_for(district="sodermalm", birth_date=born(17, birthday_in=1))
    assert preview(client, actors.worker, body).get_json()["unit"] == unit
    assert submit(client, actors, body)["receiving_unit"] == unit


def test_a_draft_is_routed_by_the_rules_in_force_when_it_is_submitted(
    client: FlaskClient, actors: Actors, admin: dict[str, str], ruleset: Installed
) -> None:
    body = body_for(district="sodermalm", birth_date=born(15))
    response = client.post(REFERRALS, json=body, headers=actors.worker)
    assert response.status_code == 201, response.get_json()
    draft = response.get_json()
    assert draft["status"] == "draft"
    assert draft["receiving_unit"] is None
    assert "rule_id" not in (draft.get("routing") or {})
    assert preview(client, actors.worker, body).get_json()["unit"] == SODERMALM

    # The rules change before submission: sodermalm youths go to intake now.
    changed = client.put(
        f"{RULES}/{ruleset.ids[30]}",
        json={"position": 30, "unit": INTAKE, "match": {"districts": ["sodermalm"]}},
        headers=admin,
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["ruleset_version"] == ruleset.version + 1

    shown = preview(client, actors.worker, body).get_json()
    response = client.post(f"{REFERRALS}/{draft['id']}/submit", json={}, headers=actors.worker)
    assert response.status_code == 200, response.get_json()
    submitted = response.get_json()
    assert submitted["receiving_unit"] == shown["unit"] == INTAKE
    assert submitted["routing"] == {
        "rule_id": ruleset.ids[30],
        "ruleset_version": ruleset.version + 1,
    }
    assert shown["rule_id"] == ruleset.ids[30]
    assert shown["ruleset_version"] == ruleset.version + 1


# --- who may preview ------------------------------------------------------------------------


# The rule endpoints need the admin scope, which no case role's token carries.
NOT_ADMINS = [
    pytest.param("youth_worker", REFERRER, id="youth-worker"),
    pytest.param("caseworker", NORRMALM, id="caseworker"),
    pytest.param("auditor", None, id="auditor"),
]


@pytest.mark.parametrize(
    ("role", "unit", "expected"),
    [
        pytest.param("youth_worker", REFERRER, None, id="youth-worker"),
        pytest.param("admin", None, None, id="admin"),
        pytest.param("caseworker", NORRMALM, FORBIDDEN, id="caseworker"),
        pytest.param("auditor", None, INSUFFICIENT_SCOPE, id="auditor"),
        pytest.param("youth_worker", None, FORBIDDEN, id="youth-worker-without-unit"),
    ],
)
def test_who_may_preview(
    client: FlaskClient, dev_token: Any, role: str, unit: str | None, expected: str | None
) -> None:
    body = body_for(district="norrmalm", birth_date=born(15))
    response = preview(client, bearer(dev_token(role, unit)), body)
    if expected is None:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["unit"] == NORRMALM
    else:
        answer = assert_problem(response, 403, expected)
        assert "unit" not in answer
        assert "explanation" not in answer


def test_preview_without_a_token_is_refused(client: FlaskClient) -> None:
    response = preview(client, {}, body_for(district="norrmalm"))
    assert response.status_code == 401
    assert "unit" not in response.get_json()


@pytest.mark.parametrize(("role", "unit"), NOT_ADMINS)
def test_only_admins_read_or_change_the_rules(
    client: FlaskClient, dev_token: Any, admin: dict[str, str], role: str, unit: str | None
) -> None:
    expected = INSUFFICIENT_SCOPE
    headers = bearer(dev_token(role, unit))
    for path in (RULES, f"{RULES}?version=1", VERSIONS):
        assert_problem(client.get(path, headers=headers), 403, expected)
    before = version_list(client, admin)
    rule = {"position": 5, "unit": INTAKE, "match": {"districts": ["vasastan"]}}
    catch_all = current_rules(client, admin)["items"][-1]["id"]
    assert_problem(client.post(RULES, json=rule, headers=headers), 403, expected)
    assert_problem(client.put(f"{RULES}/{catch_all}", json=rule, headers=headers), 403, expected)
    assert_problem(client.delete(f"{RULES}/{catch_all}", headers=headers), 403, expected)
    assert version_list(client, admin) == before


# --- the preview stores nothing --------------------------------------------------------------


def row_counts(database: Database) -> dict[str, int]:
    with database.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Referral, TimelineEvent, OutboxMessage, RoutingRuleSet)
        }


def test_preview_stores_nothing_and_audits_no_personal_data(
    client: FlaskClient, actors: Actors, ruleset: Installed, database: Database
) -> None:
    number = pnr(born(13), "724")
    body = body_for(
        district="sodermalm",
        personal_number=number,
        categories=("sexual_exploitation", "violence"),
        priority="acute",
    )
    body["subject"]["phone"] = "070-123 45 67"
    body["guardian"] = {"name": "Dana Provsson", "phone": "070-765 43 21"}
    body["place_met"] = "Medborgarplatsen"
    before = row_counts(database)
    with database.sessions() as session:
        audits_before = session.scalar(select(func.count()).select_from(AuditEvent)) or 0

    answer = preview(client, actors.worker, body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["rule_id"] == ruleset.ids[10]

    assert row_counts(database) == before
    with database.sessions() as session:
        audits = session.scalars(select(AuditEvent).order_by(AuditEvent.recorded_at)).all()
    assert len(audits) == audits_before + 1
    (event,) = [a for a in audits if a.action == "routing:preview"]
    assert (event.outcome, event.http_status) == ("allowed", 200)
    assert event.target_type is None
    assert event.target_id is None
    stored = " ".join(str(getattr(event, column.key)) for column in AuditEvent.__table__.columns)
    for personal in (
        number,
        number[2:],
        born(13).isoformat(),
        "Robin Provsson",
        "Dana Provsson",
        "Medborgarplatsen",
        "sodermalm",
        "sexual_exploitation",
    ):
        assert personal not in stored


def test_preview_checks_the_body_like_a_referral(
    client: FlaskClient, actors: Actors, ruleset: Installed
) -> None:
    # The same schema as a referral body: no "submit", no unknown keys, no target unit.
    for extra in ({"submit": True}, {"receiving_unit": NORRMALM}, {"unit": NORRMALM}):
        response = preview(client, actors.worker, {**body_for(district="norrmalm"), **extra})
        assert_problem(response, 422, VALIDATION, field=next(iter(extra)))
    wrong = pnr(born(15))
    wrong = wrong[:-1] + str((int(wrong[-1]) + 1) % 10)
    response = preview(client, actors.worker, body_for(personal_number=wrong))
    assert_problem(response, 422, "urn:referrals:problem:invalid-personal-number")
    future = body_for(birth_date=TODAY + timedelta(days=1))
    assert_problem(
        preview(client, actors.worker, future),
        422,
        "urn:referrals:problem:missing-requirement",
        field="subject.birth_date",
    )


# --- validation of rule changes ------------------------------------------------------------


def refused(
    client: FlaskClient,
    admin: dict[str, str],
    response: Any,
    *,
    type_: str,
    field: str,
    before: list[dict[str, Any]],
) -> dict[str, Any]:
    body = assert_problem(response, 422, type_, field=field)
    assert version_list(client, admin) == before, "a refused change made a version"
    return body


INVALID_ADDITIONS = [
    pytest.param(
        {"position": 60, "unit": "nosuchunit", "match": {"districts": ["vasastan"]}},
        "unit",
        id="unknown-unit",
    ),
    pytest.param(
        {"position": 60, "unit": REFERRER, "match": {"districts": ["vasastan"]}},
        "unit",
        id="referrer-as-target",
    ),
    pytest.param(
        {"position": 20, "unit": SODERMALM, "match": {"districts": ["vasastan"]}},
        "position",
        id="duplicate-position",
    ),
    pytest.param(
        {"position": 2000, "unit": SODERMALM, "match": {"districts": ["vasastan"]}},
        "position",
        id="after-the-catch-all",
    ),
    pytest.param(
        {"position": 1500, "unit": SODERMALM, "match": {}},
        "position",
        id="second-catch-all-after",
    ),
    pytest.param(
        {"position": 5, "unit": SODERMALM, "match": {}},
        "position",
        id="catch-all-first-shadows-everything",
    ),
    pytest.param(
        {
            "position": 25,
            "unit": SODERMALM,
            "match": {"districts": ["ostermalm"], "min_age": 0, "max_age": 10},
        },
        "position",
        id="shadowed-by-district-rule",
    ),
    pytest.param(
        {
            "position": 45,
            "unit": NORRMALM,
            "match": {"categories": ["sexual_exploitation"], "priorities": ["urgent"]},
        },
        "position",
        id="shadowed-by-category-rule",
    ),
    pytest.param(
        {
            "position": 35,
            "unit": NORRMALM,
            "match": {"districts": ["sodermalm"], "min_age": 13, "max_age": 15},
        },
        "position",
        id="age-band-inside-an-earlier-one",
    ),
    pytest.param(
        {"position": 60, "unit": SODERMALM, "match": {"min_age": 15, "max_age": 12}},
        "match.min_age",
        id="min-age-above-max-age",
    ),
]


@pytest.mark.parametrize(("rule", "field"), INVALID_ADDITIONS)
def test_an_invalid_rule_is_refused(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed, rule: dict[str, Any], field: str
) -> None:
    before = version_list(client, admin)
    response = client.post(RULES, json=rule, headers=admin)
    body = refused(client, admin, response, type_=INVALID_RULE_SET, field=field, before=before)
    assert body["detail"] == body["errors"][0]["message"]
    assert current_rules(client, admin)["version"] == ruleset.version


SCHEMA_REFUSALS = [
    pytest.param({"districts": []}, "match.districts", id="empty-districts"),
    pytest.param({"categories": []}, "match.categories", id="empty-categories"),
    pytest.param({"priorities": []}, "match.priorities", id="empty-priorities"),
    pytest.param({"district": ["norrmalm"]}, "match.district", id="unknown-key-district"),
    pytest.param({"age": 15}, "match.age", id="unknown-key-age"),
    pytest.param({"unit": "norrmalm"}, "match.unit", id="unknown-key-unit"),
    pytest.param({"categories": ["gambling"]}, "match.categories.0", id="unknown-category"),
    pytest.param({"priorities": ["whenever"]}, "match.priorities.0", id="unknown-priority"),
    pytest.param({"min_age": -1}, "match.min_age", id="negative-age"),
    pytest.param({"max_age": 131}, "match.max_age", id="age-above-130"),
    pytest.param({"districts": ["Norr malm"]}, "match.districts.0", id="district-not-a-slug"),
]


@pytest.mark.parametrize(("match", "field"), SCHEMA_REFUSALS)
def test_a_malformed_match_is_refused(
    client: FlaskClient,
    admin: dict[str, str],
    ruleset: Installed,
    match: dict[str, Any],
    field: str,
) -> None:
    before = version_list(client, admin)
    rule = {"position": 60, "unit": SODERMALM, "match": match}
    refused(
        client,
        admin,
        client.post(RULES, json=rule, headers=admin),
        type_=VALIDATION,
        field=field,
        before=before,
    )
    put = client.put(f"{RULES}/{ruleset.ids[40]}", json=rule, headers=admin)
    refused(client, admin, put, type_=VALIDATION, field=field, before=before)


def test_the_client_cannot_choose_the_rule_id_or_version(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    before = version_list(client, admin)
    for extra in ({"id": "mine"}, {"ruleset_version": 7}):
        rule = {"position": 60, "unit": SODERMALM, "match": {"districts": ["vasastan"]}, **extra}
        response = client.post(RULES, json=rule, headers=admin)
        refused(client, admin, response, type_=VALIDATION, field=next(iter(extra)), before=before)


def test_an_invalid_replacement_is_refused(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    before = version_list(client, admin)
    catch_all = ruleset.ids[1000]

    # The catch-all may not gain conditions: the set would no longer end in one.
    response = client.put(
        f"{RULES}/{catch_all}",
        json={"position": 1000, "unit": INTAKE, "match": {"districts": ["vasastan"]}},
        headers=admin,
    )
    refused(client, admin, response, type_=INVALID_RULE_SET, field="match", before=before)

    # Moving a rule onto another's position.
    response = client.put(
        f"{RULES}/{ruleset.ids[40]}",
        json={"position": 30, "unit": SODERMALM, "match": {"categories": ["sexual_exploitation"]}},
        headers=admin,
    )
    refused(client, admin, response, type_=INVALID_RULE_SET, field="position", before=before)

    # Moving a rule behind one that covers it.
    response = client.put(
        f"{RULES}/{ruleset.ids[30]}",
        json={
            "position": 45,
            "unit": SODERMALM,
            "match": {"categories": ["sexual_exploitation"], "districts": ["sodermalm"]},
        },
        headers=admin,
    )
    refused(client, admin, response, type_=INVALID_RULE_SET, field="position", before=before)

    # Widening an earlier rule so that it covers a later one.
    response = client.put(
        f"{RULES}/{ruleset.ids[20]}",
        json={"position": 20, "unit": NORRMALM, "match": {"districts": ["norrmalm", "sodermalm"]}},
        headers=admin,
    )
    refused(client, admin, response, type_=INVALID_RULE_SET, field="position", before=before)

    # Routing to the referring unit, to a unit that does not exist.
    for unit in (REFERRER, "nosuchunit"):
        response = client.put(
            f"{RULES}/{catch_all}",
            json={"position": 1000, "unit": unit, "match": {}},
            headers=admin,
        )
        refused(client, admin, response, type_=INVALID_RULE_SET, field="unit", before=before)

    # min_age above max_age.
    response = client.put(
        f"{RULES}/{ruleset.ids[30]}",
        json={
            "position": 30,
            "unit": SODERMALM,
            "match": {"districts": ["sodermalm"], "min_age": 18, "max_age": 12},
        },
        headers=admin,
    )
    refused(client, admin, response, type_=INVALID_RULE_SET, field="match.min_age", before=before)


def test_the_catch_all_and_the_last_rule_cannot_be_deleted(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    before = version_list(client, admin)
    response = client.delete(f"{RULES}/{ruleset.ids[1000]}", headers=admin)
    refused(client, admin, response, type_=INVALID_RULE_SET, field="match", before=before)

    # Delete every other rule: each a new version; then the catch-all alone cannot go.
    for position in (10, 20, 30, 40, 50):
        response = client.delete(f"{RULES}/{ruleset.ids[position]}", headers=admin)
        assert response.status_code == 204, response.get_json()
        assert response.get_data() == b""
    only = current_rules(client, admin)
    assert only["version"] == ruleset.version + 5
    assert [(r["position"], r["unit"], r["match"]) for r in only["items"]] == [(1000, INTAKE, {})]

    before = version_list(client, admin)
    response = client.delete(f"{RULES}/{ruleset.ids[1000]}", headers=admin)
    refused(client, admin, response, type_=INVALID_RULE_SET, field="match", before=before)
    assert current_rules(client, admin) == only


def test_unknown_rules_are_not_found(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    before = version_list(client, admin)
    rule = {"position": 60, "unit": SODERMALM, "match": {"districts": ["vasastan"]}}
    unknown = f"{RULES}/{uuid.uuid4()}"
    assert_problem(client.put(unknown, json=rule, headers=admin), 404, NOT_FOUND)
    assert_problem(client.delete(unknown, headers=admin), 404, NOT_FOUND)
    # A rule id is a UUID: anything else names no rule, and the router says so.
    assert client.put(f"{RULES}/no-such-rule", json=rule, headers=admin).status_code == 404
    assert client.delete(f"{RULES}/versions", headers=admin).status_code == 405
    assert version_list(client, admin) == before


def test_a_rule_of_an_older_version_cannot_be_changed(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    old = current_rules(client, admin, version=1)["items"][0]  # demo seed: norrmalm, 10
    assert old["id"] not in ruleset.ids.values()
    before = version_list(client, admin)
    assert_problem(client.delete(f"{RULES}/{old['id']}", headers=admin), 404, NOT_FOUND)
    assert version_list(client, admin) == before


# --- versions ----------------------------------------------------------------------------


def test_every_change_makes_a_version_and_old_decisions_keep_theirs(
    client: FlaskClient, actors: Actors, admin: dict[str, str]
) -> None:
    seed = current_rules(client, admin)
    assert seed["version"] == 1
    seed_ids = {r["position"]: r["id"] for r in seed["items"]}
    assert [(v["version"], v["rules"]) for v in version_list(client, admin)] == [(1, 4)]

    # Under version 1 (the demo seed) a sodermalm referral goes to sodermalm.
    body = body_for(district="sodermalm", birth_date=born(15))
    first = submit(client, actors, body)
    assert first["receiving_unit"] == SODERMALM
    assert first["routing"] == {"rule_id": seed_ids[20], "ruleset_version": 1}

    # v2: add a rule before it, for exploitation.
    new_rule = {
        "position": 15,
        "unit": KUNGSHOLMEN,
        "match": {"categories": ["sexual_exploitation"]},
    }
    added = client.post(RULES, json=new_rule, headers=admin)
    assert added.status_code == 201, added.get_json()
    created = added.get_json()
    assert created["ruleset_version"] == 2
    assert {k: created[k] for k in ("position", "unit", "match")} == new_rule
    # v3: sodermalm referrals go to intake now.
    replaced = client.put(
        f"{RULES}/{seed_ids[20]}",
        json={"position": 20, "unit": INTAKE, "match": {"districts": ["sodermalm"]}},
        headers=admin,
    )
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["id"] == seed_ids[20]
    assert replaced.get_json()["ruleset_version"] == 3
    # v4: the kungsholmen rule goes.
    deleted = client.delete(f"{RULES}/{seed_ids[30]}", headers=admin)
    assert deleted.status_code == 204

    versions = version_list(client, admin)
    assert [(v["version"], v["rules"]) for v in versions] == [(4, 4), (3, 5), (2, 5), (1, 4)]
    for item in versions:
        assert item["created_at"]

    def shape(listing: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
        return [(r["position"], r["unit"], r["match"]) for r in listing["items"]]

    v1 = current_rules(client, admin, version=1)
    assert v1 == seed
    assert shape(v1) == [
        (10, NORRMALM, {"districts": ["norrmalm"]}),
        (20, SODERMALM, {"districts": ["sodermalm"]}),
        (30, KUNGSHOLMEN, {"districts": ["kungsholmen"]}),
        (1000, INTAKE, {}),
    ]
    v2 = current_rules(client, admin, version=2)
    assert v2["version"] == 2
    assert all(r["ruleset_version"] == 2 for r in v2["items"])
    assert shape(v2)[1] == (15, KUNGSHOLMEN, {"categories": ["sexual_exploitation"]})
    assert [r["id"] for r in v2["items"]] == [
        seed_ids[10],
        created["id"],
        seed_ids[20],
        seed_ids[30],
        seed_ids[1000],
    ]
    v3 = current_rules(client, admin, version=3)
    assert shape(v3)[2] == (20, INTAKE, {"districts": ["sodermalm"]})
    latest = current_rules(client, admin)
    assert latest == current_rules(client, admin, version=4)
    assert seed_ids[30] not in [r["id"] for r in latest["items"]]

    # The referral decided under version 1 still says so, on the record and its event.
    again = client.get(f"{REFERRALS}/{first['id']}", headers=actors.worker)
    assert again.get_json()["routing"] == {"rule_id": seed_ids[20], "ruleset_version": 1}
    assert again.get_json()["receiving_unit"] == SODERMALM
    event = submit_event(client, actors, first["id"])
    assert (event["rule_id"], event["ruleset_version"]) == (seed_ids[20], 1)

    # A new one follows version 4.
    second = submit(client, actors, body)
    assert second["receiving_unit"] == INTAKE
    assert second["routing"] == {"rule_id": seed_ids[20], "ruleset_version": 4}
    shown = preview(client, actors.worker, body).get_json()
    assert (shown["unit"], shown["rule_id"], shown["ruleset_version"]) == (
        INTAKE,
        seed_ids[20],
        4,
    )


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param({"version": 999}, 404, id="unknown-version"),
        pytest.param({"version": 0}, 422, id="version-0"),
        pytest.param({"version": "one"}, 422, id="not-a-number"),
        pytest.param({"versions": 1}, 422, id="unknown-parameter"),
    ],
)
def test_reading_a_version_that_does_not_exist(
    client: FlaskClient, admin: dict[str, str], query: dict[str, Any], status: int
) -> None:
    response = client.get(RULES, query_string=query, headers=admin)
    assert_problem(response, status, NOT_FOUND if status == 404 else VALIDATION)


# --- units and rules ---------------------------------------------------------------------


def test_a_unit_a_rule_targets_cannot_stop_receiving(
    client: FlaskClient, admin: dict[str, str], ruleset: Installed
) -> None:
    unit = {
        "name": "Södermalms stadsdelsförvaltning",
        "kind": "referrer",
        "districts": ["sodermalm"],
    }
    response = client.put(f"{UNITS}/{SODERMALM}", json=unit, headers=admin)
    assert_problem(response, 409, CONFLICT, field="kind")
    shown = client.get(f"{UNITS}/{SODERMALM}", headers=admin).get_json()
    assert shown["kind"] == "receiver"

    # The catch-all's unit too.
    unit = {"name": "Central mottagning", "kind": "referrer", "districts": []}
    assert_problem(client.put(f"{UNITS}/{INTAKE}", json=unit, headers=admin), 409, CONFLICT)

    # Control: once no rule of the current set targets it, the unit may change kind.
    for position in (30, 40):
        assert client.delete(f"{RULES}/{ruleset.ids[position]}", headers=admin).status_code == 204
    unit = {"name": "Södermalms stadsdelsförvaltning", "kind": "referrer", "districts": []}
    response = client.put(f"{UNITS}/{SODERMALM}", json=unit, headers=admin)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["kind"] == "referrer"

    # And now it cannot be made a target again while it refers.
    before = version_list(client, admin)
    rule = {"position": 30, "unit": SODERMALM, "match": {"districts": ["sodermalm"]}}
    refused(
        client,
        admin,
        client.post(RULES, json=rule, headers=admin),
        type_=INVALID_RULE_SET,
        field="unit",
        before=before,
    )


def test_nothing_is_routed_to_a_unit_that_no_longer_receives(
    client: FlaskClient, actors: Actors, ruleset: Installed, database: Database
) -> None:
    """The API keeps a routed unit from becoming a referrer (above); a change made round
    it (in the database, by a migration) must still not send personal data there: the
    decision checks the unit it names, on submission and in the preview alike."""
    body = body_for(district="norrmalm", birth_date=born(15))
    with database.sessions() as session:
        session.execute(update(Unit).where(Unit.id == NORRMALM).values(kind="referrer"))
        session.commit()
    before = row_counts(database)

    response = client.post(REFERRALS, json={**body, "submit": True}, headers=actors.worker)
    assert_problem(response, 409, CONFLICT)
    assert row_counts(database) == before
    assert_problem(preview(client, actors.worker, body), 409, CONFLICT)

    # Control: a referral the rules send elsewhere still goes.
    other = submit(client, actors, body_for(district="vasastan", birth_date=born(15)))
    assert other["receiving_unit"] == INTAKE


def test_a_new_receiving_unit_can_be_routed_to(
    client: FlaskClient, actors: Actors, admin: dict[str, str], ruleset: Installed
) -> None:
    unit = {
        "id": "bromma",
        "name": "Bromma stadsdelsförvaltning",
        "kind": "receiver",
        "districts": ["bromma"],
    }
    assert client.post(UNITS, json=unit, headers=admin).status_code == 201
    rule = {"position": 60, "unit": "bromma", "match": {"districts": ["bromma"]}}
    added = client.post(RULES, json=rule, headers=admin)
    assert added.status_code == 201, added.get_json()
    body = body_for(district="bromma", birth_date=born(14))
    created = submit(client, actors, body)
    assert created["receiving_unit"] == "bromma"
    assert created["routing"] == {"rule_id": added.get_json()["id"], "ruleset_version": 3}
    shown = preview(client, actors.worker, body).get_json()
    assert (shown["unit"], shown["rule_id"], shown["ruleset_version"]) == (
        "bromma",
        added.get_json()["id"],
        3,
    )
    # The youth worker never chose the unit: a body naming one is refused.
    response = client.post(
        REFERRALS, json={**body, "submit": True, "receiving_unit": NORRMALM}, headers=actors.worker
    )
    assert_problem(response, 422, VALIDATION, field="receiving_unit")


# --- property: the preview and the submission always agree -------------------------------

RECEIVERS = [NORRMALM, SODERMALM, KUNGSHOLMEN, INTAKE]
DISTRICTS = ["norrmalm", "sodermalm", "kungsholmen", "ostermalm", "bromma", "vasastan"]
CATEGORIES = [c.value for c in Category]
PRIORITIES = ["acute", "urgent", "normal"]


def codes(values: list[str]) -> st.SearchStrategy[list[str] | None]:
    return st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for key, values in (
        ("districts", DISTRICTS),
        ("categories", CATEGORIES),
        ("priorities", PRIORITIES),
    ):
        chosen = draw(codes(values))
        if chosen is not None:
            match[key] = chosen
    low = draw(st.none() | st.integers(0, 20))
    high = draw(st.none() | st.integers(0, 20))
    if low is not None and high is not None and low > high:
        low, high = high, low
    if low is not None:
        match["min_age"] = low
    if high is not None:
        match["max_age"] = high
    return match


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid by construction: drop each rule an earlier kept one covers, end in a catch-all."""
    positions = draw(st.lists(st.integers(0, 999), min_size=0, max_size=8, unique=True))
    kept: list[dict[str, Any]] = []
    for position in sorted(positions):
        match = draw(matches())
        candidate = engine.Match.from_json(match)
        if candidate.covers(engine.Match()):
            continue  # matches every referral (e.g. all priorities listed): a catch-all
        if any(engine.Match.from_json(k["match"]).covers(candidate) for k in kept):
            continue
        kept.append(
            {"position": position, "unit": draw(st.sampled_from(RECEIVERS)), "match": match}
        )
    draw(st.randoms()).shuffle(kept)  # the service orders by position, not by order given
    catch_all = {
        "position": draw(st.integers(1000, 5000)),
        "unit": draw(st.sampled_from(RECEIVERS)),
        "match": {},
    }
    rules = [*kept, catch_all]
    engine.validate(
        [engine.Rule.from_json({"id": str(i), **r}) for i, r in enumerate(rules)], RECEIVERS
    )
    return rules


@st.composite
def referrals(draw: st.DrawFn) -> dict[str, Any]:
    age = draw(st.none() | st.integers(0, 22))
    birth: date | None = None
    if age is not None:
        birth = born(age, birthday_in=draw(st.sampled_from([0, 1, 2, 180, 364])))
    identity = draw(st.sampled_from(["birth_date", "personal_number", "samordningsnummer"]))
    return body_for(
        district=draw(st.none() | st.sampled_from(DISTRICTS)),
        birth_date=birth if identity == "birth_date" else None,
        personal_number=(
            pnr(
                birth,
                draw(st.sampled_from(["123", "458", "901"])),
                coordination=identity == "samordningsnummer",
            )
            if birth is not None and identity != "birth_date"
            else None
        ),
        categories=tuple(
            draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True))
        ),
        priority=draw(st.sampled_from([*PRIORITIES, None])),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=rule_sets(), body=referrals())
def test_preview_and_submission_agree_for_any_rule_set(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    rules: list[dict[str, Any]],
    body: dict[str, Any],
) -> None:
    # The database is shared by the examples of one run: each installs its own version.
    version = install(app, rules)
    answer = preview(client, actors.worker, body)
    assert answer.status_code == 200, answer.get_json()
    shown = answer.get_json()
    assert shown["ruleset_version"] == version

    created = submit(client, actors, body)
    assert created["receiving_unit"] == shown["unit"]
    assert created["routing"] == {"rule_id": shown["rule_id"], "ruleset_version": version}
    recorded = submit_event(client, actors, created["id"])
    assert (recorded["to_unit"], recorded["rule_id"], recorded["ruleset_version"]) == (
        shown["unit"],
        shown["rule_id"],
        version,
    )

    # The explanation is the rule set in position order, cut at the first match.
    ordered = sorted(rules, key=lambda r: r["position"])
    explanation = shown["explanation"]
    assert [e["position"] for e in explanation] == [r["position"] for r in ordered][
        : len(explanation)
    ]
    assert [e["matched"] for e in explanation] == [False] * (len(explanation) - 1) + [True]
    assert all(e["reasons"] for e in explanation[:-1])
    assert explanation[-1]["reasons"] == []
    assert explanation[-1]["rule_id"] == shown["rule_id"]
    assert ordered[len(explanation) - 1]["unit"] == shown["unit"]
    hypothesis_event("catch-all" if len(explanation) == len(ordered) else "earlier rule")
