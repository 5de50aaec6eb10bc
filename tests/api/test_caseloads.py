"""Caseloads that move (issue 12, item 5): assignment is a staff identity of the receiving
unit; caseworkers take, hand over and release; a unit lead reassigns a whole caseload.

The cast: Anna and Bo are caseworkers of norrmalm, Lina leads norrmalm; Sara is a
caseworker and Sam the lead of sodermalm.  Staff become known to the service by acting for
their unit (here: opening their inbox), as they would by signing in and working.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.db.engine import Database
from referrals.db.models import AuditEvent, AuditEventTarget, Referral, TimelineEvent, UnitStaff
from tests.api.helpers import (
    ACTION_NOT_ALLOWED,
    API,
    CONFLICT,
    NOT_FOUND,
    PROBLEM,
    REFERRALS,
    UNPROCESSABLE,
    VALIDATION,
    act,
    assert_problem,
    bearer,
    create,
    events,
)

ANNA, BO, LINA = "anna@norrmalm", "bo@norrmalm", "lina@norrmalm"
SARA, SAM = "sara@sodermalm", "sam@sodermalm"
FORBIDDEN = PROBLEM + "forbidden"
SCOPE = PROBLEM + "insufficient-scope"
REASSIGN = f"{API}/units/norrmalm/reassign"

Headers = dict[str, str]


class Cast:
    def __init__(self, client: FlaskClient, mint: Callable[..., str]) -> None:
        self.yw = bearer(mint("youth_worker", "ungdomsjouren"))
        self.anna = bearer(mint("caseworker", "norrmalm", ANNA))
        self.bo = bearer(mint("caseworker", "norrmalm", BO))
        self.lina = bearer(mint("unit_lead", "norrmalm", LINA))
        self.sara = bearer(mint("caseworker", "sodermalm", SARA))
        self.sam = bearer(mint("unit_lead", "sodermalm", SAM))
        self.auditor = bearer(mint("auditor"))
        self.admin = bearer(mint("admin"))
        self.analyst = bearer(mint("analyst"))
        self.privacy = bearer(mint("privacy_officer"))
        for staff in (self.anna, self.bo, self.lina, self.sara, self.sam):
            assert client.get(REFERRALS, headers=staff).status_code == 200

    def by_name(self, name: str) -> Headers:
        headers = getattr(self, name)
        assert isinstance(headers, dict)
        return headers


@pytest.fixture
def cast(client: FlaskClient, dev_token: Callable[..., str]) -> Cast:
    return Cast(client, dev_token)


def accepted(client: FlaskClient, cast: Cast, *then: tuple[str, dict[str, Any]]) -> str:
    """A referral to norrmalm, accepted by Anna with nobody assigned, then ``then``."""
    rid = str(create(client, cast.yw, submit=True)["id"])
    for action, body in (("accept", {}), *then):
        done = act(client, rid, action, cast.anna, body)
        assert done.status_code == 200, done.get_json()
    return rid


def assign(
    client: FlaskClient, rid: str, who: Mapping[str, str], assignee: str | None, **headers: str
) -> Any:
    return client.post(
        f"{REFERRALS}/{rid}/assign", json={"assignee": assignee}, headers={**who, **headers}
    )


def reassign(client: FlaskClient, who: Mapping[str, str], url: str = REASSIGN, **body: Any) -> Any:
    return client.post(url, json=body, headers=dict(who))


def stored(database: Database, rid: str) -> tuple[str | None, str | None, int]:
    with database.sessions() as session:
        row = session.get(Referral, uuid.UUID(rid))
        assert row is not None
        return row.assignee, row.assignee_issuer, row.version


def assignments(client: FlaskClient, rid: str, who: Mapping[str, str]) -> list[Any]:
    return [
        (e["action"], e["previous_assignee"], e["assignee"])
        for e in events(client, rid, who)
        if e["action"] in {"accept", "assign", "reassign"}
    ]


# --- the unit lead is a caseworker of its unit -----------------------------------------


def test_a_unit_lead_works_every_case_door_of_its_unit(client: FlaskClient, cast: Cast) -> None:
    rid = str(create(client, cast.yw, submit=True)["id"])
    inbox = client.get(REFERRALS, headers=cast.lina).get_json()["items"]
    assert rid in {item["id"] for item in inbox}
    assert client.get(f"{REFERRALS}/{rid}", headers=cast.lina).status_code == 200
    note = {"text": "Ringer skolan i morgon.", "visibility": "internal"}
    assert client.post(f"{REFERRALS}/{rid}/notes", json=note, headers=cast.lina).status_code == 201
    assert act(client, rid, "accept", cast.lina, {"assignee": LINA}).status_code == 200
    assert act(client, rid, "start", cast.lina).status_code == 200
    # Another unit's lead is outside: the referral does not exist for them.
    assert_problem(client.get(f"{REFERRALS}/{rid}", headers=cast.sam), 404, NOT_FOUND)
    assert rid not in {i["id"] for i in client.get(REFERRALS, headers=cast.sam).json["items"]}


# --- accept names a staff member or nobody ---------------------------------------------


@pytest.mark.parametrize(
    "assignee",
    ["Handläggare Ett", SARA, SAM, "never-seen@norrmalm", "dev-youth_worker@ungdomsjouren"],
    ids=["free-text", "caseworker-elsewhere", "lead-elsewhere", "unknown", "the-sender"],
)
def test_accept_refuses_an_assignee_who_is_not_staff_of_the_unit(
    client: FlaskClient, database: Database, cast: Cast, assignee: str
) -> None:
    rid = str(create(client, cast.yw, submit=True)["id"])
    refused = act(client, rid, "accept", cast.anna, {"assignee": assignee})
    body = assert_problem(refused, 422, UNPROCESSABLE, field="assignee")
    # One answer for "elsewhere" and "never seen": no probing of other units' staff.
    assert body["detail"] == "no caseworker or unit lead of this unit is known by this subject"
    assert stored(database, rid)[:2] == (None, None)
    assert client.get(f"{REFERRALS}/{rid}", headers=cast.anna).json["status"] == "requested"


def test_accept_assigns_a_known_colleague_seen_by_the_receiving_side_only(
    client: FlaskClient, database: Database, cast: Cast
) -> None:
    rid = str(create(client, cast.yw, submit=True)["id"])
    done = act(client, rid, "accept", cast.anna, {"assignee": BO})
    assert (done.status_code, done.json["assignee"]) == (200, BO)
    assert stored(database, rid)[:2] == (BO, "urn:referrals:development-issuer")
    assert assignments(client, rid, cast.anna) == [("accept", None, BO)]
    # The sender learns status and outcome, never who handles it.
    assert client.get(f"{REFERRALS}/{rid}", headers=cast.yw).json["assignee"] is None
    sender_view = client.get(f"{REFERRALS}/{rid}/events", headers=cast.yw).get_data(as_text=True)
    assert BO not in sender_view
    assert "assignee" not in sender_view


# --- take, hand over, release ----------------------------------------------------------


def test_take_hand_over_and_release_each_on_the_timeline(
    client: FlaskClient, database: Database, cast: Cast
) -> None:
    rid = accepted(client, cast)
    version = stored(database, rid)[2]
    assert assign(client, rid, cast.anna, ANNA).json["assignee"] == ANNA  # take
    # Bo may not take Anna's case from her: that is her call or the lead's.
    assert_problem(assign(client, rid, cast.bo, BO), 403, ACTION_NOT_ALLOWED)
    assert assign(client, rid, cast.anna, BO).json["assignee"] == BO  # hand over
    assert_problem(assign(client, rid, cast.anna, None), 403, ACTION_NOT_ALLOWED)
    assert assign(client, rid, cast.bo, None).json["assignee"] is None  # release
    assert assign(client, rid, cast.lina, BO).json["assignee"] == BO  # the lead decides
    assert assign(client, rid, cast.lina, LINA).json["assignee"] == LINA
    assert stored(database, rid) == (LINA, "urn:referrals:development-issuer", version + 5)
    assert assignments(client, rid, cast.bo) == [
        ("accept", None, None),
        ("assign", None, ANNA),
        ("assign", ANNA, BO),
        ("assign", BO, None),
        ("assign", None, BO),
        ("assign", BO, LINA),
    ]
    sender_view = client.get(f"{REFERRALS}/{rid}/events", headers=cast.yw).get_data(as_text=True)
    for subject in (ANNA, BO, LINA):
        assert subject not in sender_view


def test_assigning_the_same_person_again_changes_nothing(
    client: FlaskClient, database: Database, cast: Cast
) -> None:
    rid = accepted(client, cast, ("start", {}))
    assert assign(client, rid, cast.anna, ANNA).status_code == 200
    before = stored(database, rid)
    assert assign(client, rid, cast.anna, ANNA).status_code == 200
    assert stored(database, rid) == before
    assert [a for a in assignments(client, rid, cast.anna) if a[0] == "assign"] == [
        ("assign", None, ANNA)
    ]


def test_assign_needs_the_current_version_when_it_is_given(client: FlaskClient, cast: Cast) -> None:
    rid = accepted(client, cast)
    stale = assign(client, rid, cast.anna, ANNA, **{"If-Match": '"v1"'})
    assert_problem(stale, 412, PROBLEM + "precondition-failed")


@pytest.mark.parametrize(
    ("assignee", "field"),
    [(SARA, "assignee"), ("never-seen@norrmalm", "assignee"), ("", "assignee")],
    ids=["other-unit", "unknown", "empty"],
)
def test_assign_refuses_anyone_but_known_staff_of_the_unit(
    client: FlaskClient, database: Database, cast: Cast, assignee: str, field: str
) -> None:
    rid = accepted(client, cast)
    before = stored(database, rid)
    refused = assign(client, rid, cast.lina, assignee)
    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == field
    assert stored(database, rid) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "assignee"), ({"assignee": ANNA, "assignee_issuer": "x"}, "assignee_issuer")],
    ids=["missing", "mass-assignment"],
)
def test_assign_body_is_checked(
    client: FlaskClient, cast: Cast, body: dict[str, Any], field: str
) -> None:
    rid = accepted(client, cast)
    refused = client.post(f"{REFERRALS}/{rid}/assign", json=body, headers=cast.anna)
    assert_problem(refused, 422, VALIDATION, field=field)


@pytest.mark.parametrize(
    "then",
    [
        (),
        (("complete", {"outcome_code": "support_started"}),),
        (("mark-error", {"reason_code": "data_entry_error"}),),
    ],
    ids=["requested", "completed", "entered-in-error"],
)
def test_only_open_accepted_referrals_are_assigned(
    client: FlaskClient, database: Database, cast: Cast, then: tuple[Any, ...]
) -> None:
    rid = accepted(client, cast, *then) if then else create(client, cast.yw, submit=True)["id"]
    before = stored(database, rid)
    assert_problem(assign(client, rid, cast.anna, ANNA), 409, CONFLICT, field="status")
    assert stored(database, rid) == before


@pytest.mark.parametrize(
    ("caller", "status", "problem"),
    [
        ("yw", 403, ACTION_NOT_ALLOWED),  # the sender sees it, and may not assign
        ("sara", 404, NOT_FOUND),  # another unit: the referral does not exist for them
        ("sam", 404, NOT_FOUND),
        ("auditor", 403, SCOPE),
        ("admin", 403, SCOPE),
        ("analyst", 403, SCOPE),
        ("privacy", 403, SCOPE),
    ],
)
def test_assign_authorization(
    client: FlaskClient,
    database: Database,
    cast: Cast,
    caller: str,
    status: int,
    problem: str,
) -> None:
    rid = accepted(client, cast)
    before = stored(database, rid)
    refused = assign(client, rid, cast.by_name(caller), ANNA)
    body = assert_problem(refused, status, problem)
    assert stored(database, rid) == before
    if status == 404:
        ghost = assign(client, str(uuid.uuid4()), cast.by_name(caller), ANNA)
        assert (ghost.status_code, ghost.get_json()) == (404, body)
    with database.sessions() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "referral:assign", AuditEvent.target_id == rid
            )
        )
        assert (event.outcome, event.http_status) == ("denied", status)
    assert client.post(f"{REFERRALS}/{rid}/assign", json={"assignee": ANNA}).status_code == 401


# --- a unit lead's reassignment --------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "url", "status", "problem"),
    [
        ("anna", REASSIGN, 403, FORBIDDEN),  # a caseworker of the unit
        ("yw", REASSIGN, 403, FORBIDDEN),
        ("sam", REASSIGN, 404, NOT_FOUND),  # another unit's lead
        ("sam", f"{API}/units/no-such-unit/reassign", 404, NOT_FOUND),
        ("lina", f"{API}/units/sodermalm/reassign", 404, NOT_FOUND),
        ("lina", f"{API}/units/no-such-unit/reassign", 404, NOT_FOUND),
        ("lina", f"{API}/units/ungdomsjouren/reassign", 404, NOT_FOUND),
        ("auditor", REASSIGN, 403, SCOPE),
        ("admin", REASSIGN, 403, SCOPE),
        ("analyst", REASSIGN, 403, SCOPE),
        ("privacy", REASSIGN, 403, SCOPE),
    ],
)
def test_reassign_authorization(
    client: FlaskClient,
    database: Database,
    cast: Cast,
    caller: str,
    url: str,
    status: int,
    problem: str,
) -> None:
    rid = accepted(client, cast)
    assert assign(client, rid, cast.anna, ANNA).status_code == 200
    before = stored(database, rid)
    body = {"from": ANNA, "to": BO, "dry_run": False}
    refused = client.post(url, json=body, headers=cast.by_name(caller))
    answer = assert_problem(refused, status, problem)
    assert stored(database, rid) == before
    assert rid not in json.dumps(answer)
    if status == 404:
        # Another unit and no unit at all answer alike.
        ghost = client.post(f"{API}/units/nowhere/reassign", json=body, headers=cast.lina)
        assert (ghost.status_code, ghost.get_json()) == (404, answer)
    with database.sessions() as session:
        recorded = session.scalars(select(AuditEvent).where(AuditEvent.action == "unit:reassign"))
        assert {(e.outcome, e.http_status) for e in recorded} == {("denied", status)}
    assert client.post(REASSIGN, json=body).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": ANNA, "to": SARA}, "to"),  # a caseworker of another unit
        ({"from": ANNA, "to": SAM}, "to"),
        ({"from": ANNA, "to": "never-seen@norrmalm"}, "to"),
        ({"from": SARA, "to": BO}, "from"),  # another unit's caseload
        ({"from": "never-seen@norrmalm", "to": BO}, "from"),
        ({"from": ANNA, "to": ANNA}, "to"),
    ],
    ids=["to-other-unit", "to-other-lead", "to-unknown", "from-other-unit", "from-unknown", "same"],
)
def test_reassign_moves_only_between_known_staff_of_the_unit(
    client: FlaskClient, database: Database, cast: Cast, body: dict[str, Any], field: str
) -> None:
    rid = accepted(client, cast)
    assert assign(client, rid, cast.anna, ANNA).status_code == 200
    before = stored(database, rid)
    refused = reassign(client, cast.lina, **body)
    assert_problem(refused, 422, UNPROCESSABLE, field=field)
    assert stored(database, rid) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": BO}, "from"),
        ({"from": ANNA}, "to"),
        ({"from": ANNA, "to": BO, "dry_run": "maybe"}, "dry_run"),
        ({"from": ANNA, "to": BO, "unit": "sodermalm"}, "unit"),
    ],
    ids=["no-from", "no-to", "bad-dry-run", "mass-assignment"],
)
def test_reassign_body_is_checked(
    client: FlaskClient, cast: Cast, body: dict[str, Any], field: str
) -> None:
    assert_problem(reassign(client, cast.lina, **body), 422, VALIDATION, field=field)


def caseload(client: FlaskClient, cast: Cast) -> dict[str, str]:
    """Anna's open referrals in each open state, and what must not move."""
    made = {
        "accepted": accepted(client, cast),
        "in_progress": accepted(client, cast, ("start", {})),
        "on_hold": accepted(
            client, cast, ("start", {}), ("hold", {"reason_code": "awaiting_information"})
        ),
        "completed": accepted(client, cast),
        "bos": accepted(client, cast),
    }
    for name, rid in made.items():
        who = cast.bo if name == "bos" else cast.anna
        assert assign(client, rid, who, BO if name == "bos" else ANNA).status_code == 200
    done = act(
        client, made["completed"], "complete", cast.anna, {"outcome_code": "support_started"}
    )
    assert done.status_code == 200
    made["requested"] = str(create(client, cast.yw, submit=True)["id"])
    return made


def state_of(database: Database) -> dict[uuid.UUID, tuple[Any, ...]]:
    with database.sessions() as session:
        rows = {
            r.id: (r.assignee, r.version, r.updated_at) for r in session.scalars(select(Referral))
        }
        for event in session.scalars(select(TimelineEvent).order_by(TimelineEvent.position)):
            rows[event.referral_id] = (*rows[event.referral_id], event.position)
    return rows


def test_a_dry_run_lists_what_would_move_and_changes_nothing(
    client: FlaskClient, database: Database, cast: Cast
) -> None:
    made = caseload(client, cast)
    before = state_of(database)
    answer = reassign(client, cast.lina, **{"from": ANNA, "to": BO, "dry_run": True})
    assert answer.status_code == 200, answer.get_json()
    moving = sorted(made[s] for s in ("accepted", "in_progress", "on_hold"))
    assert answer.json == {
        "unit": "norrmalm",
        "from": ANNA,
        "to": BO,
        "dry_run": True,
        "count": 3,
        "referrals": moving,
    }
    assert answer.headers["Cache-Control"] == "no-store"
    assert state_of(database) == before
    # Listing the ids discloses them: each referral's access log names the dry run too.
    assert disclosed_by_the_last(database, "unit:reassign") == set(moving)


def disclosed_by_the_last(database: Database, action: str) -> set[str]:
    with database.sessions() as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.recorded_at.desc(), AuditEvent.id)
        ).first()
        assert event is not None
        assert (event.outcome, event.target_type, event.target_id) == (
            "allowed",
            "unit",
            "norrmalm",
        )
        assert event.actor_subject == LINA
        targets = session.scalars(
            select(AuditEventTarget.referral_id).where(AuditEventTarget.event_id == event.id)
        )
        return {str(t) for t in targets}


def test_a_unit_lead_moves_a_whole_caseload_in_one_request(
    client: FlaskClient, database: Database, cast: Cast, clock: Any
) -> None:
    made = caseload(client, cast)
    before = state_of(database)
    clock.advance(minutes=5)
    answer = reassign(client, cast.lina, **{"from": ANNA, "to": BO})
    assert answer.status_code == 200, answer.get_json()
    moved = sorted(made[s] for s in ("accepted", "in_progress", "on_hold"))
    assert (answer.json["dry_run"], answer.json["count"], answer.json["referrals"]) == (
        False,
        3,
        moved,
    )
    after = state_of(database)
    for name, rid in made.items():
        key = uuid.UUID(rid)
        if rid in moved:
            assignee, version, updated_at, *positions = after[key]
            assert (assignee, version) == (BO, before[key][1] + 1)
            assert updated_at == clock.now
            assert positions == [*before[key][3:], len(before[key]) - 2]
            status = name
            (last,) = events(client, rid, cast.bo)[-1:]
            assert {k: last[k] for k in ("action", "previous_assignee", "assignee")} == {
                "action": "reassign",
                "previous_assignee": ANNA,
                "assignee": BO,
            }
            assert (last["from_status"], last["to_status"], last["actor_unit"]) == (
                status,
                status,
                "norrmalm",
            )
            # The sender's timeline shows that something happened, not to whom.
            sender = events(client, rid, cast.yw)[-1]
            assert sender["action"] == "reassign"
            assert "assignee" not in sender
            assert client.get(f"{REFERRALS}/{rid}", headers=cast.bo).json["assignee"] == BO
        else:
            assert after[key] == before[key], name
    assert disclosed_by_the_last(database, "unit:reassign") == set(moved)
    # The access log of each moved referral names the reassignment (auditors' view).
    log = client.get(f"{REFERRALS}/{moved[0]}/access-log", headers=cast.auditor)
    assert "unit:reassign" in {item["action"] for item in log.json["items"]}
    # Now Bo's: Anna can no longer release them, Bo can.
    assert_problem(assign(client, moved[0], cast.anna, None), 403, ACTION_NOT_ALLOWED)
    assert assign(client, moved[0], cast.bo, None).status_code == 200
    # Nothing of Anna's is left open to move.
    again = reassign(client, cast.lina, **{"from": ANNA, "to": BO})
    assert (again.json["count"], again.json["referrals"]) == (0, [])


def test_a_stale_etag_after_a_reassignment_is_refused(client: FlaskClient, cast: Cast) -> None:
    rid = accepted(client, cast)
    taken = assign(client, rid, cast.anna, ANNA)
    etag = taken.headers["ETag"]
    assert reassign(client, cast.lina, **{"from": ANNA, "to": BO}).json["count"] == 1
    stale = client.post(f"{REFERRALS}/{rid}/start", json={}, headers={**cast.bo, "If-Match": etag})
    assert_problem(stale, 412, PROBLEM + "precondition-failed")


def test_staff_are_remembered_per_unit_and_role(database: Database, cast: Cast) -> None:
    with database.sessions() as session:
        known = {(s.unit_id, s.subject, s.role) for s in session.scalars(select(UnitStaff))}
    assert known == {
        ("norrmalm", ANNA, "caseworker"),
        ("norrmalm", BO, "caseworker"),
        ("norrmalm", LINA, "unit_lead"),
        ("sodermalm", SARA, "caseworker"),
        ("sodermalm", SAM, "unit_lead"),
    }


def test_a_caseworker_of_an_unregistered_unit_is_not_remembered(
    client: FlaskClient, database: Database, dev_token: Callable[..., str]
) -> None:
    stranger = bearer(dev_token("caseworker", "ingenstans", "kim@ingenstans"))
    assert client.get(REFERRALS, headers=stranger).status_code == 200
    with database.sessions() as session:
        assert session.scalars(select(UnitStaff)).all() == []


def test_a_remembered_row_of_another_role_is_never_assignable(
    client: FlaskClient, database: Database, cast: Cast, clock: Any
) -> None:
    """Only receiving roles are ever remembered; a row of another role (an older version, a
    hand edit) must still not make its subject assignable."""
    with database.sessions() as session:
        session.add(
            UnitStaff(
                unit_id="norrmalm",
                issuer="urn:referrals:development-issuer",
                subject="dev-youth_worker@ungdomsjouren",
                role="youth_worker",
                first_seen_at=clock.now,
                last_seen_at=clock.now,
            )
        )
        session.commit()
    rid = accepted(client, cast)
    refused = assign(client, rid, cast.lina, "dev-youth_worker@ungdomsjouren")
    assert_problem(refused, 422, UNPROCESSABLE, field="assignee")


def test_staff_are_seen_again_at_most_hourly_and_in_their_current_role(
    client: FlaskClient, database: Database, cast: Cast, clock: Any, dev_token: Any
) -> None:
    def anna() -> tuple[str, Any, Any]:
        with database.sessions() as session:
            row = session.get(UnitStaff, ("norrmalm", "urn:referrals:development-issuer", ANNA))
            assert row is not None
            return row.role, row.first_seen_at, row.last_seen_at

    first = clock.now
    clock.advance(minutes=59)
    assert client.get(REFERRALS, headers=cast.anna).status_code == 200
    assert anna() == ("caseworker", first, first)  # a read stays a read
    clock.advance(minutes=2)
    assert client.get(REFERRALS, headers=cast.anna).status_code == 200
    assert anna() == ("caseworker", first, clock.now)
    promoted = bearer(dev_token("unit_lead", "norrmalm", ANNA))
    assert client.get(REFERRALS, headers=promoted).status_code == 200
    assert anna() == ("unit_lead", first, clock.now)
