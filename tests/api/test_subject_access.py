"""A data subject's access request (GDPR Art. 15), on both databases.

One made-up person has referrals at three units; the privacy officer's export is compared
field by field with what the youth workers submitted, and holds the timelines, the shared
notes (internal ones counted, withheld), the recipients and who looked at each.  A person
with no data gets an empty export; the printable form renders in both languages and
escapes what was typed.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.auth.principal import Principal, Role, Scope
from referrals.db.engine import Database
from referrals.db.models import AuditEvent, AuditEventTarget
from referrals.domain.codes import EraseReason
from referrals.runtime import OPERATOR
from referrals.services import referrals, statistics, subject_access
from referrals.services.errors import Forbidden
from tests.api.helpers import (
    INVALID_PERSONAL_NUMBER,
    PROBLEM_JSON,
    REFERRALS,
    Actors,
    act,
    bearer,
    create,
    personal_number,
    with_wrong_check_digit,
)

EXPORT = "/api/v1/privacy/subject-access"
PERSON = personal_number(2010, 2, 3, "417")
STRANGER = personal_number(2010, 2, 3, "425")
NOBODY = personal_number(2009, 11, 30, "518")

# What was submitted about the person, at three units (the demo rules route by district).
SUBMITTED: dict[str, dict[str, Any]] = {
    "norrmalm": {
        "subject": {
            "name": "Alva Påhittadsson",
            "personal_number": PERSON,
            "phone": "070-123 45 67",
            "district": "norrmalm",
        },
        "guardian": {"name": "Berit Påhittadsson", "phone": "070-765 43 21"},
        "categories": ["drugs", "school_absence"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "place_met": "Sergels torg",
        "narrative": "Träffades sent på kvällen, verkade påverkad.",
    },
    "sodermalm": {
        "subject": {
            "name": "Alva P.",
            "personal_number": personal_number(2010, 2, 3, "417", form="10-"),
            "district": "sodermalm",
        },
        "categories": ["homelessness"],
        "priority": "normal",
        "legal_basis": "consent",
        "consent": {"given_by": "subject", "given_at": "2026-11-30T18:00:00+00:00"},
        "place_met": "Medborgarplatsen",
        "narrative": "Sov ute två nätter enligt egen uppgift.",
    },
    "kungsholmen": {
        "subject": {"name": "Alva Påhittadsson", "personal_number": PERSON,
                    "district": "kungsholmen"},
        "categories": ["family_conflict"],
        "priority": "acute",
        "legal_basis": "duty_to_inform",
        "narrative": "Bråk hemma, vill inte gå hem i kväll.",
    },
}  # fmt: skip


@pytest.fixture
def privacy(dev_token: Any) -> dict[str, str]:
    return bearer(dev_token("privacy_officer"))


def submit_all(client: FlaskClient, actors: Actors) -> dict[str, str]:
    ids = {}
    for unit, body in SUBMITTED.items():
        # Exactly this body: no defaults merged in.
        made = client.post(REFERRALS, json={**body, "submit": True}, headers=actors.worker)
        assert made.status_code == 201, made.get_json()
        assert made.get_json()["receiving_unit"] == unit
        ids[unit] = made.get_json()["id"]
    return ids


def test_the_export_holds_everything_about_the_person_at_three_units(
    client: FlaskClient, actors: Actors, privacy: dict[str, str], database: Database
) -> None:
    ids = submit_all(client, actors)
    # Someone else, born the same day: never in the export.
    other = create(client, actors.worker, subject={"personal_number": STRANGER}, submit=True)
    rid = ids["norrmalm"]
    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    for visibility, text in (
        ("shared", "Vi har fått kontakt."),
        ("internal", "Känd sedan tidigare."),
    ):
        noted = client.post(
            f"/api/v1/referrals/{rid}/notes",
            json={"text": text, "visibility": visibility},
            headers=actors.norrmalm,
        )
        assert noted.status_code == 201
    redirected = act(
        client, ids["sodermalm"], "redirect", actors.sodermalm,
        {"unit": "intake", "reason_code": "wrong_district", "reason_text": "Bor i Farsta."},
    )  # fmt: skip
    assert redirected.status_code == 200
    assert (
        client.get(
            f"/api/v1/referrals/{ids['kungsholmen']}", headers=actors.kungsholmen
        ).status_code
        == 200
    )

    got = client.post(
        EXPORT,
        json={"personal_number": personal_number(2010, 2, 3, "417", form="10")},
        headers=privacy,
    )

    assert got.status_code == 200, got.get_json()
    assert got.headers["Cache-Control"] == "no-store"
    export = got.get_json()
    assert export["personal_number"] == PERSON
    held = {item["referral"]["receiving_unit"]: item for item in export["referrals"]}
    assert set(held) == {"norrmalm", "intake", "kungsholmen"}
    assert other["id"] not in got.get_data(as_text=True)
    for unit, body in SUBMITTED.items():
        item = held["intake" if unit == "sodermalm" else unit]
        referral = item["referral"]
        assert referral["id"] == ids[unit]
        subject = {k: v for k, v in referral["subject"].items() if k not in ("birth_date", "age")}
        assert subject == {**body["subject"], "personal_number": PERSON}
        assert referral["subject"]["birth_date"] == "2010-02-03"
        assert referral.get("guardian") == body.get("guardian")
        assert referral["categories"] == sorted(body["categories"])
        assert (referral["priority"], referral["legal_basis"]) == (
            body["priority"],
            body["legal_basis"],
        )
        assert referral.get("place_met") == body.get("place_met")
        assert referral["narrative"] == body["narrative"]
        assert referral["sending_unit"] == "ungdomsjouren"
        if "consent" in body:
            assert referral["consent"]["given_by"] == "subject"
        assert "assignee" not in referral
        assert "version" not in referral

    norrmalm = held["norrmalm"]
    assert [e["action"] for e in norrmalm["timeline"]] == ["create", "submit", "accept"]
    assert [n["text"] for n in norrmalm["notes"]] == ["Vi har fått kontakt."]
    assert norrmalm["internal_notes_withheld"] == 1
    assert "Känd sedan tidigare." not in got.get_data(as_text=True)
    assert "OSL" in export["internal_notes_rule"]
    actions = [(a["action"], a["unit"]) for a in norrmalm["access_log"]]
    assert ("referral:accept", "norrmalm") in actions
    assert ("note:create", "norrmalm") in actions
    assert ("referral:create", "ungdomsjouren") in actions
    # When and which unit, never the staff member's own identity.
    assert all(
        set(a) == {"at", "action", "unit", "roles", "purpose"} for a in norrmalm["access_log"]
    )
    assert "dev-caseworker" not in got.get_data(as_text=True)

    moved = held["intake"]
    assert [(r["unit"], r["role"], r["until"] is None) for r in moved["recipients"]] == [
        ("ungdomsjouren", "sender", True),
        ("sodermalm", "receiver", False),
        ("intake", "receiver", True),
    ]
    assert moved["timeline"][-1]["reason_text"] == "Bor i Farsta."
    assert ("referral:read", "kungsholmen") in [
        (a["action"], a["unit"]) for a in held["kungsholmen"]["access_log"]
    ]

    # One audit event, naming every referral disclosed, and no personal number.
    with database.sessions() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "privacy:subject-access")
        )
        named = set(
            session.scalars(
                select(AuditEventTarget.referral_id).where(AuditEventTarget.event_id == event.id)
            )
        )
    assert (event.outcome, event.target_type) == ("allowed", None)
    assert named == {uuid.UUID(i) for i in ids.values()}
    # The next export shows the previous one in each access log.
    again = client.post(EXPORT, json={"personal_number": PERSON}, headers=privacy).get_json()
    assert ("privacy:subject-access", None) in [
        (a["action"], a["unit"]) for a in again["referrals"][0]["access_log"]
    ]


def test_a_person_with_no_data_gets_an_empty_export(
    client: FlaskClient, actors: Actors, privacy: dict[str, str], database: Database
) -> None:
    submit_all(client, actors)

    got = client.post(EXPORT, json={"personal_number": NOBODY}, headers=privacy)

    assert got.status_code == 200, got.get_json()
    assert got.get_json()["referrals"] == []
    assert got.get_json()["personal_number"] == NOBODY
    with database.sessions() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "privacy:subject-access")
        )
        assert event.outcome == "allowed"


def test_an_erased_referral_is_no_longer_held(
    client: FlaskClient, actors: Actors, privacy: dict[str, str], app: Any
) -> None:
    ids = submit_all(client, actors)
    runtime = app.extensions["referrals"]
    with runtime.unit_of_work() as uow:
        referrals.erase(
            uow,
            runtime.context(OPERATOR),
            uuid.UUID(ids["norrmalm"]),
            EraseReason.DATA_SUBJECT_REQUEST,
        )

    got = client.post(EXPORT, json={"personal_number": PERSON}, headers=privacy).get_json()
    assert {i["referral"]["id"] for i in got["referrals"]} == {ids["sodermalm"], ids["kungsholmen"]}


@pytest.mark.parametrize(
    "number",
    [with_wrong_check_digit(PERSON), "20100203-417", "2010-02-03 4170", "20100231" + "4170"],
)
def test_an_invalid_personal_number_is_refused_naming_the_field_not_the_number(
    client: FlaskClient, privacy: dict[str, str], number: str
) -> None:
    got = client.post(EXPORT, json={"personal_number": number}, headers=privacy)

    assert got.status_code == 422
    assert got.mimetype == PROBLEM_JSON
    body = got.get_json()
    assert body["errors"][0]["field"] == "personal_number"
    assert number not in got.get_data(as_text=True)
    if len(number) in (12, 13) and number.isdigit():
        assert body["type"] == INVALID_PERSONAL_NUMBER


def test_the_number_counts_only_in_the_body(client: FlaskClient, privacy: dict[str, str]) -> None:
    """A number in the query string is not read (422 for the missing body field), and
    the export has no GET for a URL to carry one."""
    got = client.post(EXPORT, query_string={"personal_number": PERSON}, json={}, headers=privacy)
    assert got.status_code == 422
    assert got.get_json()["errors"][0]["field"] == "personal_number"
    assert PERSON not in got.get_data(as_text=True)
    fetched = client.get(EXPORT, query_string={"personal_number": PERSON}, headers=privacy)
    assert fetched.status_code == 405
    assert PERSON not in fetched.get_data(as_text=True)


HOSTILE_NAME = '<script>alert("Alva")</script>'
HOSTILE_NARRATIVE = 'Sa att "<b>allt</b>" var <img src=x onerror=alert(1)> bra & lugnt.'


@pytest.mark.parametrize(
    ("language", "heading", "field"),
    [("sv", "Dina uppgifter i remisstjänsten", "Personnummer"),
     ("en", "Your data in the referral service", "Personal number")],
)  # fmt: skip
def test_the_printable_form_renders_escaped_in_both_languages(
    client: FlaskClient,
    actors: Actors,
    privacy: dict[str, str],
    language: str,
    heading: str,
    field: str,
) -> None:
    create(
        client, actors.worker,
        subject={"name": HOSTILE_NAME, "personal_number": PERSON, "district": "norrmalm"},
        narrative=HOSTILE_NARRATIVE, submit=True,
    )  # fmt: skip

    got = client.post(
        EXPORT,
        json={"personal_number": PERSON},
        headers={**privacy, "Accept": "text/html", "Accept-Language": language},
    )

    assert got.status_code == 200
    assert got.mimetype == "text/html"
    assert got.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in got.headers["Content-Security-Policy"]
    page = got.get_data(as_text=True)
    assert f'<html lang="{language}">' in page
    assert heading in page
    assert field in page
    assert PERSON in page
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;alert(&#34;Alva&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; bra &amp; lugnt." in page


def test_the_printable_access_log_says_what_was_done_in_words(
    client: FlaskClient, actors: Actors, privacy: dict[str, str]
) -> None:
    rid = create(client, actors.worker, subject={"personal_number": PERSON}, submit=True)["id"]
    assert client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm).status_code == 200
    html = {**privacy, "Accept": "text/html", "Accept-Language": "en"}

    page = client.post(EXPORT, json={"personal_number": PERSON}, headers=html).get_data(
        as_text=True
    )

    assert "<td>norrmalm</td><td>Read</td>" in page
    assert "<td>ungdomsjouren</td><td>Written or changed</td>" in page
    assert "referral:read" not in page


def test_the_printable_form_of_nothing_says_so(
    client: FlaskClient, privacy: dict[str, str]
) -> None:
    html = {**privacy, "Accept": "text/html", "Accept-Language": "en"}
    got = client.post(EXPORT, json={"personal_number": NOBODY}, headers=html)
    assert got.status_code == 200
    assert "We hold no referrals about this personal number." in got.get_data(as_text=True)


def test_json_is_the_default_and_for_any_type(client: FlaskClient, privacy: dict[str, str]) -> None:
    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        headers = {**privacy, **({"Accept": accept} if accept else {})}
        got = client.post(EXPORT, json={"personal_number": NOBODY}, headers=headers)
        assert (got.status_code, got.mimetype) == (200, "application/json"), accept


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.PRIVACY_OFFICER])
def test_the_scope_without_the_role_exports_nothing(app: Any, role: Role) -> None:
    """A token may carry any scope its client was granted: the role decides (403)."""
    runtime = app.extensions["referrals"]
    holder = Principal(
        issuer="urn:test", subject="someone", roles=frozenset({role}), unit="norrmalm",
        scopes=frozenset({Scope.PRIVACY.value, Scope.STATISTICS_READ.value}),
    )  # fmt: skip
    with runtime.unit_of_work() as uow, pytest.raises(Forbidden):
        subject_access.export(uow, runtime.context(holder), PERSON)
    if role is not Role.ANALYST:
        query = statistics.Query(start=date(2026, 11, 1), end=date(2026, 11, 30), by=("month",))
        with runtime.unit_of_work() as uow, pytest.raises(Forbidden):
            statistics.report(uow, runtime.context(holder), query, min_cell=5)
