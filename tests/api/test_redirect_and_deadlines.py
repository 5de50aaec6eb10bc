"""Redirect, decision deadlines with their escalation, and the closed loop's outbox rows.

README: Routing: a receiving unit may redirect a referral with a reason and then loses access at
once; every state change writes outbox rows for the units on the referral (minus the one
acting); a referral left undecided past its deadline is escalated once per deadline: to
the receiving unit (``referral.overdue``) and to the sending unit (``referral.unanswered``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.config import Settings
from referrals.db.models import DeadlineNotice, OutboxMessage
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import (
    ACTION_NOT_ALLOWED,
    INTAKE,
    INVALID_TRANSITION,
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
)
from tests.support.clock import FakeClock

REDIRECT = {"unit": SODERMALM, "reason_code": "wrong_district"}

# --- helpers -------------------------------------------------------------------------------


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def outbox(app: Flask, referral_id: str | None = None) -> list[tuple[str, str]]:
    """(event_type, unit) of the stored outbox rows, optionally for one referral."""
    with runtime_of(app).unit_of_work() as uow:
        query = select(OutboxMessage)
        if referral_id is not None:
            query = query.where(OutboxMessage.referral_id == uuid.UUID(referral_id))
        rows = uow.session.scalars(query).all()
        return sorted((m.event_type, m.unit_id) for m in rows)


def of_type(rows: list[tuple[str, str]], event_type: str) -> list[str]:
    return sorted(unit for kind, unit in rows if kind == event_type)


def notices(app: Flask) -> int:
    with runtime_of(app).unit_of_work() as uow:
        return len(uow.session.scalars(select(DeadlineNotice)).all())


def get(client: FlaskClient, rid: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{rid}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def not_found_shape(body: dict[str, Any]) -> dict[str, Any]:
    """What a 404 tells a caller: nothing that could differ for an existing referral."""
    return {k: v for k, v in body.items() if k != "instance"}


@pytest.fixture
def worker(app: Flask) -> Iterator[Worker]:
    job = Worker(runtime_of(app))
    yield job
    job.sender.close()


# --- redirect ------------------------------------------------------------------------------


def test_redirect_hands_the_referral_over_and_the_previous_unit_loses_it_at_once(
    app: Flask, client: FlaskClient, actors: Actors
) -> None:
    rid = create(client, actors.worker, submit=True)["id"]
    assert get(client, rid, actors.norrmalm)["receiving_unit"] == NORRMALM
    assert rid in listed_ids(client, actors.norrmalm)
    before_redirect = outbox(app, rid)

    response = act(client, rid, "redirect", actors.norrmalm, REDIRECT)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["receiving_unit"] == SODERMALM

    # Norrmalm: every route answers exactly as for a referral that never existed.
    unknown = str(uuid.uuid4())
    probes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "", None),
        ("GET", "/events", None),
        ("GET", "/notes", None),
        ("POST", "/notes", {"text": "Still ours?", "visibility": "internal"}),
        ("POST", "/accept", {}),
        ("POST", "/decline", {"reason_code": "no_capacity"}),
        ("POST", "/redirect", {"unit": INTAKE, "reason_code": "wrong_district"}),
        ("POST", "/mark-error", {"reason_code": "data_entry_error"}),
    ]
    for method, suffix, body in probes:
        seen = client.open(
            f"{REFERRALS}/{rid}{suffix}", method=method, json=body, headers=actors.norrmalm
        )
        never = client.open(
            f"{REFERRALS}/{unknown}{suffix}", method=method, json=body, headers=actors.norrmalm
        )
        problem = assert_problem(seen, 404, NOT_FOUND)
        assert not_found_shape(problem) == not_found_shape(assert_problem(never, 404, NOT_FOUND)), (
            method,
            suffix,
        )
    assert rid not in listed_ids(client, actors.norrmalm)
    assert rid not in listed_ids(client, actors.norrmalm, status="requested")

    # Södermalm has it and can decide.
    assert rid in listed_ids(client, actors.sodermalm)
    assert get(client, rid, actors.sodermalm)["receiving_unit"] == SODERMALM

    # The sender's timeline tells where it went and why.
    redirect = events(client, rid, actors.worker)[-1]
    assert redirect["action"] == "redirect"
    assert (redirect["from_unit"], redirect["to_unit"]) == (NORRMALM, SODERMALM)
    assert redirect["reason_code"] == "wrong_district"
    assert redirect["actor_unit"] == NORRMALM

    # The redirect told the sender and the new unit; the unit that let go hears nothing.
    after = outbox(app, rid)
    added = [row for row in after if row not in before_redirect]
    assert added == [("referral.redirected", SODERMALM), ("referral.redirected", REFERRER)]
    assert of_type(after, "referral.redirected") == [SODERMALM, REFERRER]

    handler = {"assignee": "dev-caseworker@sodermalm"}
    accepted = act(client, rid, "accept", actors.sodermalm, handler)
    assert accepted.status_code == 200, accepted.get_json()
    assert of_type(outbox(app, rid), "referral.accepted") == [REFERRER]
    # Norrmalm is never told about what happens at Södermalm.
    assert NORRMALM not in {unit for kind, unit in outbox(app, rid) if kind != "referral.submitted"}


@pytest.mark.parametrize(
    "unit", [REFERRER, "no-such-unit", NORRMALM], ids=["referrer", "unknown", "same"]
)
def test_redirect_to_a_unit_that_cannot_take_it_changes_nothing(
    app: Flask, client: FlaskClient, actors: Actors, database: Any, unit: str
) -> None:
    rid = create(client, actors.worker, submit=True)["id"]
    stored, rows, before = counts(database), outbox(app), get(client, rid, actors.norrmalm)

    response = act(
        client, rid, "redirect", actors.norrmalm, {"unit": unit, "reason_code": "wrong_district"}
    )

    assert_problem(response, 422, UNPROCESSABLE, field="unit")
    assert get(client, rid, actors.norrmalm) == before
    assert counts(database) == stored
    assert outbox(app) == rows
    assert rid in listed_ids(client, actors.norrmalm)
    if unit == REFERRER:
        # The referrer did not gain access to the case as a receiver.
        assert rid not in listed_ids(client, actors.caseworker(REFERRER))


# --- overdue and escalation ----------------------------------------------------------------


def test_overdue_referrals_are_listed_and_escalated_once_per_deadline(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
) -> None:
    urgent = create(client, actors.worker, priority="urgent", submit=True)
    normal = create(client, actors.worker, priority="normal", submit=True)["id"]
    assert moment(urgent["due_at"]) == clock.now + timedelta(days=3)
    rid = urgent["id"]

    first = worker.run_round()  # nothing is late yet
    assert first.escalated == 0
    assert of_type(outbox(app), "referral.overdue") == []

    clock.now = moment(urgent["due_at"]) + timedelta(seconds=1)

    for headers in (actors.norrmalm, actors.worker):
        page = listing(client, headers, overdue="true")
        assert [item["id"] for item in page["items"]] == [rid]
        assert page["items"][0]["overdue"] is True
    assert get(client, rid, actors.norrmalm)["overdue"] is True
    assert get(client, normal, actors.norrmalm)["overdue"] is False
    assert listed_ids(client, actors.sodermalm, overdue="true") == []

    escalation = worker.run_round()

    assert escalation.escalated == 1
    rows = outbox(app, rid)
    assert of_type(rows, "referral.overdue") == [NORRMALM]
    assert of_type(rows, "referral.unanswered") == [REFERRER]
    assert of_type(outbox(app, normal), "referral.overdue") == []
    assert of_type(outbox(app, normal), "referral.unanswered") == []

    # Once per deadline: more rounds, later, add nothing.
    for _ in range(2):
        assert worker.run_round().escalated == 0
    clock.advance(days=2)
    assert worker.run_round().escalated == 0
    rows = outbox(app, rid)
    assert of_type(rows, "referral.overdue") == [NORRMALM]
    assert of_type(rows, "referral.unanswered") == [REFERRER]
    assert notices(app) == 1

    # A decision ends it.
    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    assert listed_ids(client, actors.norrmalm, overdue="true") == []
    assert listed_ids(client, actors.worker, overdue="true") == []
    assert get(client, rid, actors.worker)["overdue"] is False
    clock.advance(days=1)
    assert worker.run_round().escalated == 0
    rows = outbox(app, rid)
    assert len(of_type(rows, "referral.overdue") + of_type(rows, "referral.unanswered")) == 2


def test_a_referral_decided_before_the_worker_runs_is_not_escalated(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
) -> None:
    rid = create(client, actors.worker, priority="urgent", submit=True)["id"]
    clock.advance(days=4)
    assert listed_ids(client, actors.norrmalm, overdue="true") == [rid]
    declined = act(client, rid, "decline", actors.norrmalm, {"reason_code": "no_capacity"})
    assert declined.status_code == 200, declined.get_json()

    assert worker.run_round().escalated == 0
    rows = outbox(app, rid)
    assert of_type(rows, "referral.overdue") == []
    assert of_type(rows, "referral.unanswered") == []


def test_a_redirected_overdue_referral_is_escalated_to_the_unit_that_has_it(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
) -> None:
    """Redirect keeps the deadline; the overdue notice goes to the new unit, never the old."""
    rid = create(client, actors.worker, priority="urgent", submit=True)["id"]
    assert act(client, rid, "redirect", actors.norrmalm, REDIRECT).status_code == 200
    clock.advance(days=3, seconds=1)

    assert worker.run_round().escalated == 1

    rows = outbox(app, rid)
    assert of_type(rows, "referral.overdue") == [SODERMALM]
    assert of_type(rows, "referral.unanswered") == [REFERRER]
    assert listed_ids(client, actors.sodermalm, overdue="true") == [rid]
    assert listed_ids(client, actors.norrmalm, overdue="true") == []


def test_acute_is_due_at_the_end_of_the_stockholm_day(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
) -> None:
    clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 10:00 in Stockholm (CET)
    acute = create(client, actors.worker, priority="acute", submit=True)
    rid = acute["id"]
    # 23:59:59.999999 local time, CET = UTC+1.
    assert moment(acute["due_at"]) == datetime(2026, 11, 26, 22, 59, 59, 999999, tzinfo=UTC)

    clock.now = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)  # 23:00 in Stockholm: same day
    assert get(client, rid, actors.norrmalm)["overdue"] is False
    assert listed_ids(client, actors.norrmalm, overdue="true") == []
    assert worker.run_round().escalated == 0

    clock.now = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 00:00 the next day in Stockholm
    assert get(client, rid, actors.norrmalm)["overdue"] is True
    assert listed_ids(client, actors.norrmalm, overdue="true") == [rid]
    assert worker.run_round().escalated == 1
    assert of_type(outbox(app, rid), "referral.overdue") == [NORRMALM]


class TestConfiguredDeadlines:
    """REFERRALS_DEADLINE_URGENT_DAYS / _NORMAL_DAYS set the policy of the running app."""

    @pytest.fixture
    def settings(self, instance_path: Path) -> Settings:
        return Settings(instance_path=instance_path, deadline_urgent_days=1, deadline_normal_days=5)

    def test_urgent_and_normal_deadlines_follow_the_settings(
        self, app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, worker: Worker
    ) -> None:
        submitted_at = clock.now
        urgent = create(client, actors.worker, priority="urgent", submit=True)
        normal = create(client, actors.worker, priority="normal", submit=True)

        assert moment(urgent["due_at"]) == submitted_at + timedelta(days=1)
        assert moment(normal["due_at"]) == submitted_at + timedelta(days=5)

        clock.advance(days=1, seconds=1)
        assert listed_ids(client, actors.norrmalm, overdue="true") == [urgent["id"]]
        assert worker.run_round().escalated == 1
        clock.advance(days=4)
        late = set(listed_ids(client, actors.norrmalm, overdue="true"))
        assert late == {normal["id"], urgent["id"]}
        assert worker.run_round().escalated == 1


# --- the closed loop -----------------------------------------------------------------------


def submitted(client: FlaskClient, actors: Actors, *steps: tuple[str, dict[str, Any]]) -> str:
    rid = create(client, actors.worker, submit=True)["id"]
    for action, body in steps:
        response = act(client, rid, action, actors.norrmalm, body)
        assert response.status_code == 200, response.get_json()
    return str(rid)


ACCEPT = ("accept", {"assignee": "dev-caseworker@norrmalm"})


@pytest.mark.parametrize(
    ("steps", "action", "body", "event_type"),
    [
        ((), "decline", {"reason_code": "no_capacity"}, "referral.declined"),
        ((ACCEPT,), "cancel", {"reason_code": "subject_declined"}, "referral.cancelled"),
        ((ACCEPT,), "fail", {"reason_code": "subject_unreachable"}, "referral.failed"),
        ((ACCEPT,), "complete", {"outcome_code": "support_started"}, "referral.completed"),
        ((), "accept", {}, "referral.accepted"),
    ],
    ids=["decline", "receiver-cancel", "fail", "complete", "accept"],
)
def test_receiving_units_decisions_are_announced_to_the_sending_unit(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    steps: tuple[tuple[str, dict[str, Any]], ...],
    action: str,
    body: dict[str, Any],
    event_type: str,
) -> None:
    rid = submitted(client, actors, *steps)
    before = outbox(app, rid)

    response = act(client, rid, action, actors.norrmalm, body)

    assert response.status_code == 200, response.get_json()
    added = [row for row in outbox(app, rid) if row not in before]
    assert added == [(event_type, REFERRER)]


def test_senders_cancel_is_announced_to_the_receiving_unit(
    app: Flask, client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    assert outbox(app, rid) == [("referral.submitted", NORRMALM)]

    response = act(client, rid, "cancel", actors.worker, {"reason_code": "no_longer_needed"})

    assert response.status_code == 200, response.get_json()
    assert outbox(app, rid) == [("referral.cancelled", NORRMALM), ("referral.submitted", NORRMALM)]


def test_a_refused_action_writes_no_outbox_row(
    app: Flask, client: FlaskClient, actors: Actors
) -> None:
    rid = submitted(client, actors)
    before = outbox(app)

    # Wrong side, wrong status, bad body: none of them changes anything, so none announces.
    wrong_side = act(client, rid, "decline", actors.worker, {"reason_code": "other"})
    assert_problem(wrong_side, 403, ACTION_NOT_ALLOWED)
    too_early = act(client, rid, "complete", actors.norrmalm, {"outcome_code": "support_started"})
    assert_problem(too_early, 409, INVALID_TRANSITION)
    assert_problem(act(client, rid, "decline", actors.norrmalm, {}), 422, VALIDATION)

    assert outbox(app) == before


def test_a_unit_on_both_sides_reads_only_its_own_sides_internal_notes(
    client: FlaskClient, actors: Actors, dev_token: Callable[..., str]
) -> None:
    """An admin may re-register a referring unit as a receiving one, and a referral it
    sent may then be redirected to it: one unit on both sides.  Its caseworkers (the
    receiving side) still do not read the internal notes its youth workers wrote as the
    sender, nor the other way round; shared notes reach both."""
    rid = create(client, actors.worker, submit=True)["id"]
    for text_, visibility in (("Sändarens interna", "internal"), ("Till båda", "shared")):
        note = client.post(
            f"{REFERRALS}/{rid}/notes",
            json={"text": text_, "visibility": visibility},
            headers=actors.worker,
        )
        assert note.status_code == 201, note.get_json()
    admin = {"Authorization": f"Bearer {dev_token('admin')}"}
    changed = client.put(
        f"/api/v1/units/{REFERRER}",
        json={"name": "Ungdomsjouren", "kind": "receiver", "districts": []},
        headers=admin,
    )
    assert changed.status_code == 200, changed.get_json()
    moved = act(client, rid, "redirect", actors.norrmalm, {**REDIRECT, "unit": REFERRER})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["receiving_unit"] == REFERRER

    receiver = actors.caseworker(REFERRER)
    written = client.post(
        f"{REFERRALS}/{rid}/notes",
        json={"text": "Mottagarens interna", "visibility": "internal"},
        headers=receiver,
    )
    assert written.status_code == 201, written.get_json()

    def texts(headers: dict[str, str]) -> list[str]:
        response = client.get(f"{REFERRALS}/{rid}/notes", headers=headers)
        assert response.status_code == 200, response.get_json()
        return sorted(n["text"] for n in response.get_json()["items"])

    assert texts(receiver) == ["Mottagarens interna", "Till båda"]
    assert texts(actors.worker) == ["Sändarens interna", "Till båda"]
