"""The referral state machine of README: Referral states, driven over HTTP.

Each transition is made by the side that owns it and checked three ways: the response,
the timeline event it wrote, and (for refusals) that nothing changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from flask.testing import FlaskClient
from marshmallow import Schema

from tests.api.helpers import (
    ACTION_NOT_ALLOWED,
    CONFLICT,
    INTAKE,
    INVALID_TRANSITION,
    KUNGSHOLMEN,
    MISSING_REQUIREMENT,
    NORRMALM,
    NOT_FOUND,
    REFERRALS,
    REFERRER,
    SODERMALM,
    UNPROCESSABLE,
    VALIDATION,
    Actors,
    act,
    assert_problem,
    counts,
    create,
    events,
    listed_ids,
    listing,
    moment,
    referral_body,
)
from tests.support.statements import sent_statements

REASON = {"reason_code": "no_capacity", "reason_text": "Full this month."}
OUTCOME = {"outcome_code": "support_started"}

# How to bring a freshly submitted referral (at norrmalm) to each status:
# (action, who, body) steps; "worker" is the sender, "norrmalm" the receiving unit.
Step = tuple[str, str, dict[str, Any]]
ACCEPT: Step = ("accept", "norrmalm", {"assignee": "dev-caseworker@norrmalm"})
START: Step = ("start", "norrmalm", {})
HOLD: Step = ("hold", "norrmalm", {"reason_code": "awaiting_information"})
PATHS: dict[str, list[Step]] = {
    "requested": [],
    "accepted": [ACCEPT],
    "in_progress": [ACCEPT, START],
    "on_hold": [ACCEPT, START, HOLD],
    "completed": [ACCEPT, ("complete", "norrmalm", OUTCOME)],
    "failed": [ACCEPT, ("fail", "norrmalm", {"reason_code": "subject_unreachable"})],
    "rejected": [("decline", "norrmalm", REASON)],
    "cancelled": [("cancel", "worker", {"reason_code": "no_longer_needed"})],
    "entered_in_error": [("mark-error", "worker", {"reason_code": "data_entry_error"})],
}


@pytest.fixture
def reach(client: FlaskClient, actors: Actors, clock: Any) -> Any:
    """``reach("on_hold")`` -> the id of a referral at norrmalm in that status.

    The clock moves a minute before every step, so timeline events have distinct times.
    """

    def go(status: str, **overrides: Any) -> str:
        if status == "draft":
            return str(create(client, actors.worker, **overrides)["id"])
        referral = create(client, actors.worker, submit=True, **overrides)
        assert referral["status"] == "requested"
        assert referral["receiving_unit"] == NORRMALM
        for action, who, body in PATHS[status]:
            clock.advance(minutes=1)
            response = act(client, referral["id"], action, getattr(actors, who), body)
            assert response.status_code == 200, response.get_json()
        clock.advance(minutes=1)
        return str(referral["id"])

    return go


def get(client: FlaskClient, referral_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{referral_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


# --- every allowed transition ------------------------------------------------------------

TRANSITIONS = [
    # (from status, action, who, body, to status)
    ("requested", "accept", "norrmalm", {"assignee": "dev-caseworker@norrmalm"}, "accepted"),
    ("requested", "decline", "norrmalm", REASON, "rejected"),
    ("requested", "cancel", "worker", {"reason_code": "no_longer_needed"}, "cancelled"),
    ("accepted", "start", "norrmalm", {}, "in_progress"),
    ("in_progress", "hold", "norrmalm", {"reason_code": "awaiting_information"}, "on_hold"),
    ("on_hold", "resume", "norrmalm", {}, "in_progress"),
    *[
        (status, "complete", "norrmalm", OUTCOME, "completed")
        for status in ("accepted", "in_progress", "on_hold")
    ],
    *[
        (status, "fail", "norrmalm", {"reason_code": "subject_unreachable"}, "failed")
        for status in ("accepted", "in_progress", "on_hold")
    ],
    *[
        (status, "cancel", "norrmalm", {"reason_code": "moved", "reason_text": "Moved."},
         "cancelled")
        for status in ("accepted", "in_progress", "on_hold")
    ],
    *[
        (status, "mark-error", who, {"reason_code": "wrong_subject"}, "entered_in_error")
        for status in ("requested", "accepted", "in_progress", "on_hold")
        for who in ("worker", "norrmalm")
    ],
]  # fmt: skip

FINAL = {"completed", "failed", "rejected", "cancelled", "entered_in_error"}
ACTOR_UNIT = {"worker": REFERRER, "norrmalm": NORRMALM}


@pytest.mark.parametrize(
    ("from_status", "action", "who", "body", "to_status"),
    TRANSITIONS,
    ids=[f"{t[0]}-{t[1]}-by-{t[2]}" for t in TRANSITIONS],
)
def test_transition(client, actors, reach, database, from_status, action, who, body, to_status):
    rid = reach(from_status)
    before = get(client, rid, actors.worker)
    assert before["status"] == from_status
    _, events_before = counts(database)

    response = act(client, rid, action, getattr(actors, who), body)

    assert response.status_code == 200, response.get_json()
    after = response.get_json()
    assert after["status"] == to_status
    assert after["version"] == before["version"] + 1
    assert response.headers["ETag"] == f'"v{after["version"]}"'
    assert after["receiving_unit"] == NORRMALM
    assert after["open"] is (to_status not in FINAL)
    if "reason_code" in body:
        assert after["reason_code"] == body["reason_code"]
    if "outcome_code" in body:
        assert after["outcome_code"] == body["outcome_code"]
    if action == "accept":
        assert after["assignee"] == body["assignee"]
        # Who handles the case is the receiving unit's business (policy.may_see_assignee).
        assert get(client, rid, actors.worker)["assignee"] is None
    assert counts(database)[1] == events_before + 1
    # Both sides read the same event at the end of the timeline.
    for reader in (actors.worker, actors.norrmalm):
        last = events(client, rid, reader)[-1]
        assert last["action"] == action
        assert last["from_status"] == from_status
        assert last["to_status"] == to_status
        assert last["actor_unit"] == ACTOR_UNIT[who]
        assert last["reason_code"] == body.get("reason_code")
        assert last["reason_text"] == body.get("reason_text")
        assert last["outcome_code"] == body.get("outcome_code")
        assert last["from_unit"] is None
        assert last["to_unit"] == NORRMALM
    assert get(client, rid, actors.norrmalm)["status"] == to_status


def test_submit_a_draft(client, actors, reach, clock):
    rid = reach("draft")
    draft = get(client, rid, actors.worker)
    assert draft["status"] == "draft"
    assert draft["receiving_unit"] is None
    assert draft["submitted_at"] is None
    assert draft["due_at"] is None
    clock.advance(hours=2)

    response = act(client, rid, "submit", actors.worker)

    assert response.status_code == 200, response.get_json()
    submitted = response.get_json()
    assert submitted["status"] == "requested"
    assert submitted["receiving_unit"] == NORRMALM
    assert moment(submitted["submitted_at"]) == clock.now
    assert submitted["subject"]["age"] == 15
    timeline = events(client, rid, actors.worker)
    assert [(e["action"], e["from_status"], e["to_status"]) for e in timeline] == [
        ("create", None, "draft"),
        ("submit", "draft", "requested"),
    ]
    assert timeline[0]["to_unit"] is None
    assert timeline[1]["to_unit"] == NORRMALM
    assert {e["actor_unit"] for e in timeline} == {REFERRER}
    assert moment(timeline[1]["at"]) == clock.now
    assert rid in listed_ids(client, actors.norrmalm)


def test_create_and_submit_in_one_request_records_both_events_in_order(client, actors):
    referral = create(client, actors.worker, submit=True)

    timeline = events(client, referral["id"], actors.norrmalm)

    assert [e["action"] for e in timeline] == ["create", "submit"]
    assert timeline[1]["from_status"] == "draft"
    assert timeline[1]["to_status"] == "requested"


def test_create_and_submit_writes_each_table_once(client, actors, database):
    """The units and the rule set come in one statement; the new referral is stored at its
    submitted version in one INSERT (no INSERT of the draft and UPDATE for its
    submission), and both timeline events in one more."""
    with sent_statements(database.engine) as sent:
        referral = create(client, actors.worker, submit=True)

    heads = [text.split("(")[0].split(" SET ")[0].strip() for text in sent]
    writes = [h for h in heads if not h.startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert sorted(writes) == [
        "INSERT INTO audit_events",
        "INSERT INTO outbox",
        "INSERT INTO referrals",
        "INSERT INTO timeline_events",
    ]
    assert len([text for text in sent if "FROM units" in text]) == 1
    assert len([text for text in sent if "routing_rulesets" in text]) == 1
    assert referral["version"] == 2
    assert (
        client.get(f"{REFERRALS}/{referral['id']}", headers=actors.worker).get_json()["version"]
        == 2
    )


def test_a_create_builds_no_schema_per_request(client, actors):
    """The body's schema (and the nested ones it holds) is built once per view, not for
    every request: webargs builds a new instance per request when given a class."""
    for _ in range(2):  # anything built lazily is built now (the second has a duplicate)
        create(client, actors.worker, submit=True)
    built: list[str] = []
    original = Schema.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    with mock.patch.object(Schema, "__init__", counting):
        create(client, actors.worker, submit=True)
        create(client, actors.worker, submit=False)
    assert built == []


def test_full_closed_loop_as_the_sender_sees_it(client, actors, reach):
    rid = reach("on_hold")
    assert act(client, rid, "resume", actors.norrmalm).status_code == 200
    completed = act(client, rid, "complete", actors.norrmalm, OUTCOME)
    assert completed.status_code == 200, completed.get_json()

    referral = get(client, rid, actors.worker)
    timeline = events(client, rid, actors.worker)

    assert referral["status"] == "completed"
    assert referral["outcome_code"] == "support_started"
    assert [e["action"] for e in timeline] == [
        "create", "submit", "accept", "start", "hold", "resume", "complete",
    ]  # fmt: skip
    assert [e["to_status"] for e in timeline] == [
        "draft", "requested", "accepted", "in_progress", "on_hold", "in_progress", "completed",
    ]  # fmt: skip
    times = [moment(e["at"]) for e in timeline]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("status", "action", "who", "body"),
    [
        ("on_hold", "resume", "norrmalm", {}),
        ("requested", "accept", "sodermalm", {}),
    ],
    ids=["resume-after-hold", "accept-after-redirect"],
)
def test_reason_code_describes_the_current_status(client, actors, reach, status, action, who, body):
    """A stale reason (why it was held, why it was redirected) must not outlive its status."""
    rid = reach(status)
    if action == "accept":
        redirect = {"unit": SODERMALM, "reason_code": "wrong_district"}
        assert act(client, rid, "redirect", actors.norrmalm, redirect).status_code == 200

    response = act(client, rid, action, getattr(actors, who), body)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["reason_code"] is None


# --- refusals: wrong status, wrong side, missing inputs -------------------------------------

INVALID = [
    ("accepted", "accept", "norrmalm", {}),
    ("requested", "start", "norrmalm", {}),
    ("in_progress", "resume", "norrmalm", {}),
    ("accepted", "hold", "norrmalm", {"reason_code": "awaiting_information"}),
    ("on_hold", "hold", "norrmalm", {"reason_code": "awaiting_information"}),
    ("in_progress", "start", "norrmalm", {}),
    ("requested", "complete", "norrmalm", OUTCOME),
    ("requested", "fail", "norrmalm", {"reason_code": "subject_unreachable"}),
    ("requested", "submit", "worker", {}),
    ("draft", "cancel", "worker", {"reason_code": "no_longer_needed"}),
    ("draft", "mark-error", "worker", {"reason_code": "data_entry_error"}),
    ("completed", "accept", "norrmalm", {}),
    ("completed", "complete", "norrmalm", OUTCOME),
    ("completed", "mark-error", "worker", {"reason_code": "data_entry_error"}),
    ("rejected", "decline", "norrmalm", REASON),
    ("rejected", "accept", "norrmalm", {}),
    ("cancelled", "cancel", "worker", {"reason_code": "duplicate"}),
    ("failed", "start", "norrmalm", {}),
    ("entered_in_error", "mark-error", "norrmalm", {"reason_code": "data_entry_error"}),
    ("entered_in_error", "resume", "norrmalm", {}),
]


@pytest.mark.parametrize(
    ("status", "action", "who", "body"),
    INVALID,
    ids=[f"{t[1]}-from-{t[0]}" for t in INVALID],
)
def test_action_not_leaving_the_status_is_409(
    client, actors, reach, database, status, action, who, body
):
    rid = reach(status)
    before = get(client, rid, actors.worker)
    stored = counts(database)

    response = act(client, rid, action, getattr(actors, who), body)

    problem = assert_problem(response, 409, INVALID_TRANSITION)
    assert action in problem["detail"]
    assert get(client, rid, actors.worker) == before
    assert counts(database) == stored


WRONG_SIDE = [
    ("requested", "accept", "worker", {}),
    ("requested", "decline", "worker", REASON),
    ("requested", "redirect", "worker", {"unit": SODERMALM, "reason_code": "wrong_district"}),
    ("requested", "cancel", "norrmalm", {"reason_code": "no_longer_needed"}),
    ("requested", "submit", "norrmalm", {}),
    ("accepted", "start", "worker", {}),
    ("accepted", "complete", "worker", OUTCOME),
    ("accepted", "fail", "worker", {"reason_code": "subject_unreachable"}),
    ("accepted", "cancel", "worker", {"reason_code": "no_longer_needed"}),
    ("in_progress", "hold", "worker", {"reason_code": "awaiting_information"}),
    ("on_hold", "resume", "worker", {}),
]


@pytest.mark.parametrize(
    ("status", "action", "who", "body"),
    WRONG_SIDE,
    ids=[f"{t[1]}-at-{t[0]}-by-{t[2]}" for t in WRONG_SIDE],
)
def test_action_of_the_other_side_is_403(
    client, actors, reach, database, status, action, who, body
):
    rid = reach(status)
    before = get(client, rid, actors.worker)
    stored = counts(database)

    response = act(client, rid, action, getattr(actors, who), body)

    assert_problem(response, 403, ACTION_NOT_ALLOWED)
    assert get(client, rid, actors.worker) == before
    assert counts(database) == stored


NEEDS_REASON: list[tuple[str, str, str]] = [
    ("requested", "decline", "norrmalm"),
    ("requested", "cancel", "worker"),
    ("accepted", "cancel", "norrmalm"),
    ("accepted", "fail", "norrmalm"),
    ("in_progress", "hold", "norrmalm"),
    ("requested", "mark-error", "worker"),
    ("accepted", "mark-error", "norrmalm"),
]


REASON_BODIES = [
    *[(*case, {}) for case in NEEDS_REASON],
    ("requested", "decline", "norrmalm", {"reason_text": "No code given."}),
    ("in_progress", "hold", "norrmalm", {"reason_code": None}),
]


@pytest.mark.parametrize(("status", "action", "who", "body"), REASON_BODIES, ids=str)
def test_reason_code_is_required(client, actors, reach, database, status, action, who, body):
    rid = reach(status)
    before = get(client, rid, actors.worker)
    stored = counts(database)

    response = act(client, rid, action, getattr(actors, who), body)

    problem = assert_problem(response, 422, VALIDATION, field="reason_code")
    assert problem["detail"].startswith("reason_code")
    assert get(client, rid, actors.worker) == before
    assert counts(database) == stored


def test_unknown_reason_code_is_422(client, actors, reach):
    rid = reach("requested")

    response = act(client, rid, "decline", actors.norrmalm, {"reason_code": "bored"})

    assert_problem(response, 422, VALIDATION, field="reason_code")
    assert get(client, rid, actors.norrmalm)["status"] == "requested"


@pytest.mark.parametrize("body", [{}, {"outcome_code": "done"}, {"reason_code": "other"}], ids=str)
def test_complete_needs_a_known_outcome_code(client, actors, reach, database, body):
    rid = reach("in_progress")
    stored = counts(database)

    response = act(client, rid, "complete", actors.norrmalm, body)

    problem = assert_problem(response, 422, VALIDATION)
    assert "outcome_code" in {e["field"] for e in problem["errors"]}
    assert get(client, rid, actors.norrmalm)["status"] == "in_progress"
    assert counts(database) == stored


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("accept", {"status": "completed"}),
        ("accept", {"receiving_unit": SODERMALM}),
        ("start", {"assignee": "Någon"}),
        ("decline", {"reason_code": "no_capacity", "unit": SODERMALM}),
    ],
    ids=str,
)
def test_action_bodies_reject_unknown_fields(client, actors, reach, action, body):
    rid = reach("accepted" if action == "start" else "requested")
    before = get(client, rid, actors.norrmalm)

    response = act(client, rid, action, actors.norrmalm, body)

    problem = assert_problem(response, 422, VALIDATION)
    extra = (set(body) - {"reason_code"}).pop()
    assert extra in {e["field"] for e in problem["errors"]}
    assert get(client, rid, actors.norrmalm) == before


def test_caseworker_does_not_see_drafts(client, actors, reach):
    rid = reach("draft")

    assert_problem(client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm), 404, NOT_FOUND)
    assert_problem(act(client, rid, "accept", actors.norrmalm), 404, NOT_FOUND)
    assert rid not in listed_ids(client, actors.norrmalm)
    assert rid not in listed_ids(client, actors.intake)


@pytest.mark.parametrize("unit", [SODERMALM, KUNGSHOLMEN, INTAKE])
def test_other_receiving_units_get_404(client, actors, reach, unit):
    rid = reach("requested")
    other = actors.caseworker(unit)

    assert_problem(client.get(f"{REFERRALS}/{rid}", headers=other), 404, NOT_FOUND)
    assert_problem(act(client, rid, "accept", other), 404, NOT_FOUND)
    assert_problem(client.get(f"{REFERRALS}/{rid}/events", headers=other), 404, NOT_FOUND)
    assert rid not in listed_ids(client, other)
    assert get(client, rid, actors.norrmalm)["status"] == "requested"


# --- redirect ------------------------------------------------------------------------------


def test_redirect_moves_the_referral_to_another_unit(client, actors, reach):
    rid = reach("requested")
    body = {"unit": SODERMALM, "reason_code": "wrong_district", "reason_text": "Lives south."}

    response = act(client, rid, "redirect", actors.norrmalm, body)

    assert response.status_code == 200, response.get_json()
    redirected = response.get_json()
    assert redirected["status"] == "requested"
    assert redirected["receiving_unit"] == SODERMALM
    assert redirected["reason_code"] == "wrong_district"
    # The previous unit loses access at once.
    assert_problem(client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm), 404, NOT_FOUND)
    assert_problem(act(client, rid, "accept", actors.norrmalm), 404, NOT_FOUND)
    assert rid not in listed_ids(client, actors.norrmalm)
    # The new unit has it in its inbox and can act on it.
    assert rid in listed_ids(client, actors.sodermalm)
    assert get(client, rid, actors.sodermalm)["receiving_unit"] == SODERMALM
    # The sender's timeline tells the story.
    last = events(client, rid, actors.worker)[-1]
    assert last == {
        **last,
        "action": "redirect",
        "actor_unit": NORRMALM,
        "from_status": "requested",
        "to_status": "requested",
        "from_unit": NORRMALM,
        "to_unit": SODERMALM,
        "reason_code": "wrong_district",
        "reason_text": "Lives south.",
        "outcome_code": None,
    }
    accepted = act(client, rid, "accept", actors.sodermalm)
    assert accepted.status_code == 200, accepted.get_json()
    assert events(client, rid, actors.worker)[-1]["actor_unit"] == SODERMALM


def test_redirect_clears_the_assignee_and_keeps_the_deadline(client, actors, reach):
    rid = reach("requested")
    due = get(client, rid, actors.worker)["due_at"]

    response = act(
        client, rid, "redirect", actors.norrmalm, {"unit": INTAKE, "reason_code": "other"}
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["assignee"] is None
    assert response.get_json()["due_at"] == due


@pytest.mark.parametrize("unit", [REFERRER, "bromma", NORRMALM], ids=str)
def test_redirect_needs_another_receiving_unit(client, actors, reach, database, unit):
    rid = reach("requested")
    stored = counts(database)

    response = act(
        client, rid, "redirect", actors.norrmalm, {"unit": unit, "reason_code": "wrong_district"}
    )

    assert_problem(response, 422, UNPROCESSABLE, field="unit")
    referral = get(client, rid, actors.norrmalm)
    assert (referral["status"], referral["receiving_unit"]) == ("requested", NORRMALM)
    assert counts(database) == stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason_code": "wrong_district"}, "unit"),
        ({"unit": "", "reason_code": "wrong_district"}, "unit"),
        ({"unit": "Not A Slug", "reason_code": "wrong_district"}, "unit"),
        ({"unit": SODERMALM}, "reason_code"),
    ],
    ids=str,
)
def test_redirect_body_is_validated(client, actors, reach, body, field):
    rid = reach("requested")

    response = act(client, rid, "redirect", actors.norrmalm, body)

    assert_problem(response, 422, VALIDATION, field=field)
    assert get(client, rid, actors.norrmalm)["receiving_unit"] == NORRMALM


@pytest.mark.parametrize("status", ["accepted", "completed"])
def test_redirect_only_from_requested(client, actors, reach, status):
    rid = reach(status)

    response = act(
        client, rid, "redirect", actors.norrmalm, {"unit": SODERMALM, "reason_code": "moved"}
    )

    assert_problem(response, 409, INVALID_TRANSITION)
    assert get(client, rid, actors.norrmalm)["receiving_unit"] == NORRMALM


# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "unit"),
    [
        ({"district": NORRMALM}, NORRMALM),
        ({"district": SODERMALM}, SODERMALM),
        ({"district": KUNGSHOLMEN}, KUNGSHOLMEN),
        ({"district": "bromma"}, INTAKE),
        ({"name": "Utan Distrikt"}, INTAKE),
        (None, INTAKE),
    ],
    ids=["norrmalm", "sodermalm", "kungsholmen", "unserved-district", "no-district", "no-subject"],
)
def test_routing_on_submit(client, actors, subject, unit):
    body = referral_body(subject=None, submit=True)
    if subject is not None:
        body["subject"] = subject

    created = client.post(REFERRALS, json=body, headers=actors.worker)

    assert created.status_code == 201, created.get_json()
    referral = created.get_json()
    rid = referral["id"]
    assert referral["status"] == "requested"
    assert referral["receiving_unit"] == unit
    assert events(client, rid, actors.worker)[-1]["to_unit"] == unit
    assert rid in listed_ids(client, actors.caseworker(unit))
    for other in {NORRMALM, SODERMALM, KUNGSHOLMEN, INTAKE} - {unit}:
        assert rid not in listed_ids(client, actors.caseworker(other))


@pytest.mark.parametrize(
    ("district", "unit"), [(SODERMALM, SODERMALM), ("bromma", INTAKE)], ids=str
)
def test_routing_when_a_draft_is_submitted_later(client, actors, reach, district, unit):
    rid = reach("draft", subject={"district": district})

    response = act(client, rid, "submit", actors.worker)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["receiving_unit"] == unit
    assert rid in listed_ids(client, actors.caseworker(unit))


def test_referral_without_any_identity_can_be_submitted(client, actors):
    body = {
        "categories": ["homelessness"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "submit": True,
    }

    response = client.post(REFERRALS, json=body, headers=actors.worker)

    assert response.status_code == 201, response.get_json()
    referral = response.get_json()
    assert referral["subject"] is None
    assert referral["receiving_unit"] == INTAKE
    assert get(client, referral["id"], actors.intake)["status"] == "requested"


# --- what submission needs -------------------------------------------------------------------

SUBMIT_REQUIREMENTS = [
    ({"legal_basis": None}, "legal_basis"),
    ({"legal_basis": "consent"}, "consent"),
    ({"categories": []}, "categories"),
    ({"categories": None}, "categories"),
]


@pytest.mark.parametrize(("overrides", "field"), SUBMIT_REQUIREMENTS, ids=str)
def test_create_and_submit_refuses_what_submission_needs(
    client, actors, database, overrides, field
):
    stored = counts(database)

    response = client.post(
        REFERRALS, json=referral_body(submit=True, **overrides), headers=actors.worker
    )

    assert_problem(response, 422, MISSING_REQUIREMENT, field=field)
    assert counts(database) == stored


@pytest.mark.parametrize(("overrides", "field"), SUBMIT_REQUIREMENTS, ids=str)
def test_submit_action_refuses_what_submission_needs(
    client, actors, reach, database, overrides, field
):
    rid = reach("draft", **overrides)
    before = get(client, rid, actors.worker)
    stored = counts(database)

    response = act(client, rid, "submit", actors.worker)

    assert_problem(response, 422, MISSING_REQUIREMENT, field=field)
    assert get(client, rid, actors.worker) == before
    assert counts(database) == stored


@pytest.mark.parametrize("given_by", ["subject", "guardian"])
def test_consent_with_its_record_can_be_submitted(client, actors, given_by):
    consent = {"given_by": given_by, "given_at": "2026-11-26T08:30:00+01:00"}

    referral = create(client, actors.worker, legal_basis="consent", consent=consent, submit=True)

    assert referral["status"] == "requested"
    assert referral["legal_basis"] == "consent"
    assert referral["consent"]["given_by"] == given_by
    assert moment(referral["consent"]["given_at"]) == datetime(2026, 11, 26, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "consent",
    [{"given_by": "subject"}, {"given_at": "2026-11-26T08:30:00+01:00"},
     {"given_by": "friend", "given_at": "2026-11-26T08:30:00+01:00"},
     {"given_by": "subject", "given_at": "2026-11-26T08:30:00"}],
    ids=["no-time", "no-giver", "unknown-giver", "naive-time"],
)  # fmt: skip
def test_incomplete_consent_record_is_422(client, actors, database, consent):
    stored = counts(database)

    response = client.post(
        REFERRALS,
        json=referral_body(legal_basis="consent", consent=consent, submit=True),
        headers=actors.worker,
    )

    body = assert_problem(response, 422, VALIDATION)
    assert all(e["field"].startswith("consent.") for e in body["errors"]), body
    assert counts(database) == stored


# --- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "priority", "due"),
    [
        # Winter (CET, UTC+1): the Stockholm day ends at 22:59:59.999999 UTC.
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "normal", datetime(2026, 12, 10, 9, 0)),
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "urgent", datetime(2026, 11, 29, 9, 0)),
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "acute",
         datetime(2026, 11, 26, 22, 59, 59, 999999)),
        # 23:30 UTC is already the next day in Stockholm.
        (datetime(2026, 11, 26, 23, 30, tzinfo=UTC), "acute",
         datetime(2026, 11, 27, 22, 59, 59, 999999)),
        # Summer (CEST, UTC+2).
        (datetime(2026, 6, 15, 10, 0, tzinfo=UTC), "acute",
         datetime(2026, 6, 15, 21, 59, 59, 999999)),
        # Elapsed time across the change to winter time (25 October 2026).
        (datetime(2026, 10, 20, 12, 0, tzinfo=UTC), "normal", datetime(2026, 11, 3, 12, 0)),
    ],
    ids=["normal", "urgent", "acute", "acute-after-local-midnight", "acute-summer",
         "normal-across-dst"],
)  # fmt: skip
def test_priority_sets_the_deadline(client, actors, clock, start, priority, due):
    clock.now = start

    referral = create(client, actors.worker, priority=priority, submit=True)

    assert referral["priority"] == priority
    assert moment(referral["due_at"]) == due.replace(tzinfo=UTC)
    assert moment(referral["submitted_at"]) == start
    stored = get(client, referral["id"], actors.norrmalm)
    assert moment(stored["due_at"]) == due.replace(tzinfo=UTC)


def test_deadline_counts_from_submission_not_creation(client, actors, reach, clock):
    rid = reach("draft", priority="urgent")
    clock.advance(days=2, hours=5)

    submitted = act(client, rid, "submit", actors.worker).get_json()

    assert moment(submitted["due_at"]) == clock.now + timedelta(days=3)


def test_overdue_listing(client, actors, clock):
    normal = create(client, actors.worker, submit=True)["id"]
    draft = create(client, actors.worker)["id"]
    clock.advance(days=13)
    assert listed_ids(client, actors.norrmalm, overdue="true") == []
    clock.advance(days=1)  # exactly at the deadline: not yet overdue
    assert listed_ids(client, actors.norrmalm, overdue="true") == []
    assert get(client, normal, actors.norrmalm)["overdue"] is False

    clock.advance(days=1)

    page = listing(client, actors.norrmalm, overdue="true")
    assert [item["id"] for item in page["items"]] == [normal]
    assert page["items"][0]["overdue"] is True
    assert get(client, normal, actors.norrmalm)["overdue"] is True
    assert listed_ids(client, actors.worker, overdue="true") == [normal]
    assert draft not in listed_ids(client, actors.worker, overdue="true")
    assert listed_ids(client, actors.sodermalm, overdue="true") == []
    # A decision ends the wait: accepted referrals are no longer overdue.
    assert act(client, normal, "accept", actors.norrmalm).status_code == 200
    assert listed_ids(client, actors.norrmalm, overdue="true") == []
    assert get(client, normal, actors.norrmalm)["overdue"] is False


def test_overdue_false_lists_only_referrals_within_their_deadline(client, actors, clock):
    late = create(client, actors.worker, priority="urgent", submit=True)["id"]
    clock.advance(days=4)
    fresh = create(client, actors.worker, submit=True)["id"]

    assert listed_ids(client, actors.norrmalm, overdue="false") == [fresh]
    assert listed_ids(client, actors.norrmalm, overdue="true") == [late]
    assert listed_ids(client, actors.norrmalm) == [fresh, late]


# --- notes ---------------------------------------------------------------------------------


def add_note(client, rid, headers, text, visibility):
    response = client.post(
        f"{REFERRALS}/{rid}/notes", json={"text": text, "visibility": visibility}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def note_texts(client, rid, headers) -> set[str]:
    response = client.get(f"{REFERRALS}/{rid}/notes", headers=headers)
    assert response.status_code == 200, response.get_json()
    return {n["text"] for n in response.get_json()["items"]}


def test_notes_internal_stay_with_their_side(client, actors, reach):
    rid = reach("accepted")
    note = add_note(client, rid, actors.worker, "sender internal", "internal")
    assert note["author_side"] == "sender"
    assert note["author_unit"] == REFERRER
    assert note["visibility"] == "internal"
    add_note(client, rid, actors.worker, "sender shared", "shared")
    note = add_note(client, rid, actors.norrmalm, "receiver internal", "internal")
    assert (note["author_side"], note["author_unit"]) == ("receiver", NORRMALM)
    add_note(client, rid, actors.norrmalm, "receiver shared", "shared")

    assert note_texts(client, rid, actors.worker) == {
        "sender internal", "sender shared", "receiver shared",
    }  # fmt: skip
    assert note_texts(client, rid, actors.norrmalm) == {
        "receiver internal", "receiver shared", "sender shared",
    }  # fmt: skip


def test_notes_on_a_draft_are_the_senders_alone(client, actors, reach):
    rid = reach("draft")
    add_note(client, rid, actors.worker, "before sending", "shared")

    response = client.post(
        f"{REFERRALS}/{rid}/notes",
        json={"text": "peek", "visibility": "shared"},
        headers=actors.norrmalm,
    )

    assert_problem(response, 404, NOT_FOUND)
    assert note_texts(client, rid, actors.worker) == {"before sending"}


def test_internal_notes_stay_with_the_unit_that_wrote_them_after_a_redirect(client, actors, reach):
    """codes.NoteVisibility: "Internal notes stay with the writer's unit"."""
    rid = reach("requested")
    add_note(client, rid, actors.norrmalm, "norrmalm internal assessment", "internal")
    add_note(client, rid, actors.norrmalm, "norrmalm shared", "shared")
    redirect = {"unit": SODERMALM, "reason_code": "wrong_district"}
    assert act(client, rid, "redirect", actors.norrmalm, redirect).status_code == 200
    # The new unit reads other units' note texts once disclosed to it (two-phase).
    assert act(client, rid, "accept", actors.sodermalm).status_code == 200

    assert note_texts(client, rid, actors.sodermalm) == {"norrmalm shared"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x"}, "visibility"),
        ({"text": "x", "visibility": "public"}, "visibility"),
        ({"visibility": "shared"}, "text"),
        ({"text": "", "visibility": "shared"}, "text"),
        ({"text": "x", "visibility": "shared", "author_side": "receiver"}, "author_side"),
    ],
    ids=str,
)
def test_note_body_is_validated(client, actors, reach, body, field):
    rid = reach("requested")

    response = client.post(f"{REFERRALS}/{rid}/notes", json=body, headers=actors.worker)

    assert_problem(response, 422, VALIDATION, field=field)
    assert note_texts(client, rid, actors.worker) == set()


# --- deleting drafts -------------------------------------------------------------------------


def test_delete_a_draft(client, actors, reach, database):
    stored = counts(database)
    rid = reach("draft")
    assert counts(database) == (stored[0] + 1, stored[1] + 1)

    response = client.delete(f"{REFERRALS}/{rid}", headers=actors.worker)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(client.get(f"{REFERRALS}/{rid}", headers=actors.worker), 404, NOT_FOUND)
    assert_problem(client.delete(f"{REFERRALS}/{rid}", headers=actors.worker), 404, NOT_FOUND)
    assert rid not in listed_ids(client, actors.worker)
    assert counts(database) == stored


@pytest.mark.parametrize("status", ["requested", "accepted", "cancelled"])
def test_delete_a_submitted_referral_is_409(client, actors, reach, database, status):
    rid = reach(status)
    stored = counts(database)

    response = client.delete(f"{REFERRALS}/{rid}", headers=actors.worker)

    assert_problem(response, 409, CONFLICT)
    assert get(client, rid, actors.worker)["status"] == status
    assert counts(database) == stored


def test_receiving_unit_cannot_delete_a_referral(client, actors, reach, database):
    rid = reach("requested")
    stored = counts(database)

    response = client.delete(f"{REFERRALS}/{rid}", headers=actors.norrmalm)

    assert_problem(response, 403, ACTION_NOT_ALLOWED)
    assert get(client, rid, actors.norrmalm)["status"] == "requested"
    assert counts(database) == stored
