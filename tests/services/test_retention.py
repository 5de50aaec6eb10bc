"""Retention (gallring) and legal holds, end to end with a clock the test moves.

Referrals driven over the API to every final status (and a draft) with a canary in every
sensitive field are left to the worker: once a referral's period has ended the worker
crypto-shreds it through the erase path, and each erasure is in the audit trail.  What
"gone" means is checked in the raw database: the ciphertexts, wrapped data key and blind
index each referral had before are found in no cell of any table afterwards, and no
canary is found in plaintext; the API returns none of its values.  A held referral keeps
all of it until the hold is released.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, select

from referrals.db.models import (
    AuditEvent,
    AuditEventTarget,
    LegalHold,
    Note,
    Referral,
    TimelineEvent,
)
from referrals.domain.codes import EraseReason
from referrals.runtime import OPERATOR, Runtime
from referrals.services import referrals as referral_cases
from referrals.services import retention
from referrals.services.errors import Conflict
from referrals.services.records import CASE_FIELDS
from referrals.worker import Worker
from tests.api.helpers import Actors, act, create, forbid_server_errors, referral_body
from tests.crypto.canary import (
    Canaries,
    Needle,
    Scenario,
    populate,
    read_back,
    scan_database,
)
from tests.services.test_key_rotation import Deployment, open_deployment
from tests.support.clock import FakeClock

PRIVACY = "/api/v1/privacy/retention"
# populate(): Alfa failed, Bravo rejected, Charlie cancelled, Delta entered in error,
# Echo a draft never submitted.
STATUSES = {
    "Alfa": "failed",
    "Bravo": "rejected",
    "Charlie": "cancelled",
    "Delta": "entered_in_error",
    "Echo": "draft",
}


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


@pytest.fixture
def officer(dev_token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token('privacy_officer')}"}


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    if "app" not in request.fixturenames:
        yield
        return
    seen = forbid_server_errors(request.getfixturevalue("app"))
    yield
    assert seen == []


def hold(client: FlaskClient, rid: str, headers: Mapping[str, str], code: str = "complaint") -> Any:
    return client.put(
        f"/api/v1/referrals/{rid}/legal-hold", json={"reason_code": code}, headers=dict(headers)
    )


def release(client: FlaskClient, rid: str, headers: Mapping[str, str]) -> Any:
    return client.delete(f"/api/v1/referrals/{rid}/legal-hold", headers=dict(headers))


def report(client: FlaskClient, headers: Mapping[str, str], days: int = 30) -> dict[str, Any]:
    response = client.get(f"{PRIVACY}?days={days}", headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def stored_secrets(connection: Connection, rid: str) -> list[Needle]:
    """Every ciphertext, the wrapped data key and the blind index a referral has stored:
    the bytes that must be nowhere once it is erased."""
    key = uuid.UUID(rid)
    row = connection.execute(select(Referral.__table__).where(Referral.__table__.c.id == key))
    referral = dict(row.mappings().one())
    found: list[Needle] = []
    for name in ("dek_wrapped", *CASE_FIELDS):
        if referral[name] is not None:
            found.append((f"{rid} {name}", bytes(referral[name])))
    if referral["personal_number_index"] is not None:
        found.append((f"{rid} blind index", referral["personal_number_index"].encode()))
    for model, column in ((Note, "text"), (TimelineEvent, "reason_text")):
        table = model.__table__
        rows = connection.execute(select(table.c[column]).where(table.c.referral_id == key))
        found += [(f"{rid} {model.__name__}.{column}", bytes(v)) for (v,) in rows if v is not None]
    return found


def canaries_of(scenario: Scenario, tag: str) -> Canaries:
    values = {k: v for k, v in scenario.canaries.values.items() if k.startswith(f"{tag} ")}
    needles = [n for n in scenario.canaries.needles if n[0].startswith(f"{tag} ")]
    return Canaries(values, needles)


def retention_events(connection: Connection) -> list[dict[str, Any]]:
    table = AuditEvent.__table__
    rows = connection.execute(
        select(table)
        .where(table.c.action.in_(["referral:erase", "referral:legal-hold",
                                   "referral:legal-hold-release", "privacy:retention"]))
        .order_by(table.c.recorded_at, table.c.id)
    )  # fmt: skip
    return [dict(r) for r in rows.mappings()]


def test_expired_referrals_are_erased_by_the_worker_and_a_held_one_only_after_release(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    officer: dict[str, str],
    clock: FakeClock,
    db_connection: Connection,
) -> None:
    scenario = populate(client, actors)
    ids = scenario.ids
    open_one = create(client, actors.worker, **referral_body(submit=True))["id"]
    assert act(client, open_one, "accept", actors.norrmalm, {}).status_code == 200
    secrets = {tag: stored_secrets(db_connection, rid) for tag, rid in ids.items()}
    assert all(secrets.values())
    start = clock.now
    job = Worker(app.extensions["referrals"])

    # An officer holds Bravo (declined) for a complaint.
    placed = hold(client, ids["Bravo"], officer)
    assert placed.status_code == 200, placed.get_json()
    assert placed.get_json()["reason_code"] == "complaint"

    # Day 29: nothing is due yet; the draft (30 days) is due within the month.
    clock.now = start + timedelta(days=29)
    assert job.run_round().erased == 0
    seen = report(client, officer)
    assert [(d["referral_id"], d["status"], d["past_due"]) for d in seen["due"]] == [
        (ids["Echo"], "draft", False)
    ]
    assert seen["due"][0]["due_at"] == (start + timedelta(days=30)).isoformat()
    assert [(h["referral_id"], h["reason_code"]) for h in seen["held"]] == [
        (ids["Bravo"], "complaint")
    ]
    assert seen["periods"] == {
        "rejected": 365, "cancelled": 365, "entered_in_error": 90,
        "completed": 730, "failed": 730, "draft": 30,
    }  # fmt: skip
    text = json.dumps(seen, ensure_ascii=False)
    assert [v for v in scenario.canaries.values.values() if v in text] == []

    # Day 31: the draft goes, the rest stays.
    clock.now = start + timedelta(days=31)
    job = Worker(app.extensions["referrals"])
    assert job.run_round().erased == 1
    assert scan_database(db_connection, secrets["Echo"]) == []
    assert scan_database(db_connection, secrets["Alfa"]) != []  # the scanner finds what is there

    # Day 800: every period has ended; Bravo is held, the open referral never expires.
    clock.now = start + timedelta(days=800)
    job = Worker(app.extensions["referrals"])
    assert job.run_round().erased == 3
    assert job.run_round().erased == 0  # within the interval: no second look
    for tag in ("Alfa", "Charlie", "Delta", "Echo"):
        assert scan_database(db_connection, secrets[tag]) == [], tag
        assert scan_database(db_connection, canaries_of(scenario, tag).needles) == [], tag
    assert len(scan_database(db_connection, secrets["Bravo"])) == len(secrets["Bravo"])
    returned = read_back(client, actors, scenario)
    erased_tags = ("Alfa", "Charlie", "Delta", "Echo")
    gone = set().union(*(canaries_of(scenario, t).values.values() for t in erased_tags))
    assert gone & returned == set()
    bravo = set(canaries_of(scenario, "Bravo").values.values())
    assert bravo <= returned
    assert (
        client.get(f"/api/v1/referrals/{open_one}", headers=actors.worker).get_json()["erased"]
        is False
    )
    seen = report(client, officer, days=0)
    assert seen["due"] == []
    assert seen["held"][0]["due_at"] == (start + timedelta(days=365)).isoformat()

    # Released: the next round lets it go.
    assert release(client, ids["Bravo"], officer).status_code == 204
    clock.advance(seconds=301)
    assert job.run_round().erased == 1
    assert scan_database(db_connection, secrets["Bravo"]) == []
    assert bravo & read_back(client, actors, scenario) == set()
    assert report(client, officer)["held"] == []

    # Each step is in the audit trail: the hold, each erasure (the worker, with its reason
    # code and the referral as target), the release, the reports.
    # Events of one moment (a fake clock stands still) are compared as a set.
    steps: dict[timedelta, list[tuple[Any, ...]]] = {}
    for e in retention_events(db_connection):
        step = (e["action"], e["target_id"], e["actor_issuer"], e["reason"], e["outcome"])
        steps.setdefault(e["recorded_at"] - start, []).append(step)
    officer_issuer = steps[timedelta(0)][0][2]
    assert officer_issuer != "urn:referrals:worker"
    by_officer = (officer_issuer, None, "allowed")
    worker = ("urn:referrals:worker", "retention_expired", "allowed")
    erase = "referral:erase"
    report_step = ("privacy:retention", None, *by_officer)
    day = timedelta(days=1)
    assert {at: sorted(s, key=str) for at, s in steps.items()} == {
        at: sorted(s, key=str)
        for at, s in {
            0 * day: [("referral:legal-hold", ids["Bravo"], *by_officer)],
            29 * day: [report_step],
            31 * day: [(erase, ids["Echo"], *worker)],
            800 * day: [
                *[(erase, ids[t], *worker) for t in ("Alfa", "Charlie", "Delta")],
                report_step,
                ("referral:legal-hold-release", ids["Bravo"], *by_officer),
            ],
            800 * day + timedelta(seconds=301): [(erase, ids["Bravo"], *worker), report_step],
        }.items()
    }
    erasures = {
        str(e["referral_id"]): (e["actor"], e["reason_code"])
        for e in _rows(db_connection, TimelineEvent)
        if e["action"] == "erase"
    }
    assert erasures == {
        ids[t]: ("urn:referrals:worker|retention", "retention_expired") for t in STATUSES
    }


def _rows(connection: Connection, model: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in connection.execute(select(model.__table__)).mappings()]


def test_a_hold_stops_a_manual_erasure_too_until_it_is_released(
    app: Flask, client: FlaskClient, actors: Actors, officer: dict[str, str]
) -> None:
    rid = create(client, actors.worker, **referral_body(submit=True))["id"]
    assert hold(client, rid, officer, "litigation").status_code == 200
    runtime: Runtime = app.extensions["referrals"]
    with runtime.unit_of_work() as uow, pytest.raises(Conflict, match="legal hold"):
        referral_cases.erase(
            uow, runtime.context(OPERATOR), uuid.UUID(rid), EraseReason.DATA_SUBJECT_REQUEST
        )
    assert client.get(f"/api/v1/referrals/{rid}", headers=actors.worker).get_json()["subject"]
    assert release(client, rid, officer).status_code == 204
    with runtime.unit_of_work() as uow:
        referral_cases.erase(
            uow, runtime.context(OPERATOR), uuid.UUID(rid), EraseReason.DATA_SUBJECT_REQUEST
        )
    view = client.get(f"/api/v1/referrals/{rid}", headers=actors.worker).get_json()
    assert view["erased"] is True
    # An erased referral has nothing left to hold.
    refused = hold(client, rid, officer)
    assert refused.status_code == 409
    assert refused.get_json()["errors"][0]["field"] == "id"


def test_a_held_draft_cannot_be_deleted_until_the_hold_is_released(
    client: FlaskClient, actors: Actors, officer: dict[str, str]
) -> None:
    """Deleting a draft is an erasure too: a hold stops it, with a 409 and no change."""
    draft = create(client, actors.worker)
    rid = draft["id"]
    assert hold(client, rid, officer, "complaint").status_code == 200
    url = f"/api/v1/referrals/{rid}"
    refused = client.delete(url, headers=actors.worker)
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["errors"][0]["field"] == "id"
    assert "legal hold" in refused.get_json()["detail"]
    assert client.get(url, headers=actors.worker).status_code == 200
    assert release(client, rid, officer).status_code == 204
    assert client.delete(url, headers=actors.worker).status_code == 204
    assert client.get(url, headers=actors.worker).status_code == 404


def test_holds_are_reason_coded_replaced_by_put_and_released_explicitly(
    client: FlaskClient,
    actors: Actors,
    officer: dict[str, str],
    dev_token: Any,
    db_connection: Connection,
) -> None:
    rid = create(client, actors.worker, **referral_body(submit=True))["id"]
    auditor = {"Authorization": f"Bearer {dev_token('auditor')}"}

    assert hold(client, rid, officer, "complaint").status_code == 200
    assert hold(client, rid, officer, "complaint").status_code == 200  # the same: no change
    replaced = hold(client, rid, auditor, "supervision")  # an auditor may, too
    assert replaced.status_code == 200
    holds = sorted(_rows(db_connection, LegalHold), key=lambda h: h["placed_at"])
    assert [(h["reason_code"], h["released_at"] is None) for h in holds] == [
        ("complaint", False),
        ("supervision", True),
    ] or [(h["reason_code"], h["released_by"] is not None) for h in holds] == [
        ("complaint", True),
        ("supervision", False),
    ]
    assert len(holds) == 2

    assert release(client, rid, officer).status_code == 204
    again = release(client, rid, officer)
    assert again.status_code == 409
    assert again.get_json()["errors"][0]["field"] == "id"
    assert all(h["released_at"] is not None for h in _rows(db_connection, LegalHold))

    for body, field in (({"reason_code": "because"}, "reason_code"), ({}, "reason_code")):
        bad = client.put(f"/api/v1/referrals/{rid}/legal-hold", json=body, headers=officer)
        assert bad.status_code == 422
        assert [e["field"] for e in bad.get_json()["errors"]] == [field]
    free_text = {"reason_code": "complaint", "reason_text": "Mamman klagade."}
    bad = client.put(f"/api/v1/referrals/{rid}/legal-hold", json=free_text, headers=officer)
    assert bad.status_code == 422
    ghost = hold(client, str(uuid.uuid4()), officer)
    assert ghost.status_code == 404
    for days in ("-1", "3651", "x"):
        bad = client.get(f"{PRIVACY}?days={days}", headers=officer)
        assert bad.status_code == 422
        assert [e["field"] for e in bad.get_json()["errors"]] == ["days"]


def test_the_backlog_counts_what_is_due_and_what_is_held(
    app: Flask, client: FlaskClient, actors: Actors, officer: dict[str, str], clock: FakeClock
) -> None:
    drafts = [create(client, actors.worker, **referral_body())["id"] for _ in range(3)]
    assert hold(client, drafts[0], officer).status_code == 200
    runtime: Runtime = app.extensions["referrals"]
    periods = runtime.retention_policy()
    with runtime.unit_of_work() as uow:
        assert retention.backlog(uow.session, periods, clock.now) == retention.Backlog(0, 1)
        later = clock.now + timedelta(days=31)
        assert retention.backlog(uow.session, periods, later) == retention.Backlog(2, 1)


def test_the_worker_erases_in_batches(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock
) -> None:
    drafts = [create(client, actors.worker, **referral_body())["id"] for _ in range(3)]
    runtime: Runtime = app.extensions["referrals"]
    runtime.settings = runtime.settings.with_overrides(retention_batch_size=2)
    clock.advance(days=31)
    job = Worker(runtime)
    assert job.run_round().erased == 2
    # A full batch means a backlog: the next round goes on at once, not after the interval.
    assert job.run_round().erased == 1
    assert job.run_round().erased == 0
    views = [client.get(f"/api/v1/referrals/{d}", headers=actors.worker).get_json() for d in drafts]
    assert [v["erased"] for v in views] == [True, True, True]


# --- the command line, against a real instance -------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


def test_retention_report_on_the_command_line(deployment: Deployment) -> None:
    deployment.ok("seed", "demo")
    client = deployment.app().test_client()
    worker = deployment.token("youth_worker", "ungdomsjouren")
    draft = create(client, worker, **referral_body())["id"]
    held = create(client, worker, **referral_body())["id"]
    placed = hold(client, held, deployment.token("privacy_officer"), "audit_review")
    assert placed.status_code == 200, placed.get_json()

    lines = deployment.ok("retention", "report", "--days", "31").splitlines()
    assert lines[0] == "due within 31 days: 1"
    assert lines[1].startswith(f"{draft}\tdraft\tdue\t")
    assert lines[2] == "on legal hold: 1"
    assert lines[3].startswith(f"{held}\tdraft\taudit_review\t")
    assert deployment.ok("retention", "report", "--days", "29").splitlines()[0] == (
        "due within 29 days: 0"
    )
    as_json = json.loads(deployment.ok("retention", "report", "--days", "31", "--json"))
    assert [d["referral_id"] for d in as_json["due"]] == [draft]
    assert "Exempelsson" not in json.dumps(as_json)
    assert "Invalid value" in deployment.refused("retention", "report", "--days", "-1")
    # The operator's erase is refused while the hold stands, and recorded as refused.
    assert "legal hold" in deployment.refused("erase", held, "--reason", "legal_order")
    refusals = [e for e in deployment.rows(AuditEvent).values() if e["action"] == "referral:erase"]
    assert [(e["target_id"], e["http_status"], e["outcome"]) for e in refusals] == [
        (held, 409, "error")
    ]

    events = [e for e in deployment.rows(AuditEvent).values() if e["action"] == "privacy:retention"]
    assert len(events) == 3
    assert {(e["actor_issuer"], e["outcome"]) for e in events} == {("urn:referrals:cli", "allowed")}
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            targets = connection.execute(select(AuditEventTarget.referral_id)).scalars().all()
    finally:
        engine.dispose()
    disclosed = {str(t) for t in targets}
    assert {draft, held} <= disclosed


def test_a_hold_placed_after_the_worker_chose_its_candidates_still_stops_the_erasure(
    app: Flask, client: FlaskClient, actors: Actors, officer: dict[str, str], clock: FakeClock
) -> None:
    rid = create(client, actors.worker, **referral_body())["id"]
    clock.advance(days=31)
    runtime: Runtime = app.extensions["referrals"]
    placed: list[int] = []

    def units_of_work(audit: Any) -> Any:
        # The candidates have been read (that look carries no audit event); before the
        # erasure's own transaction begins, an officer holds the referral.
        if audit is not None and not placed:
            placed.append(hold(client, rid, officer).status_code)
        return runtime.unit_of_work(audit=audit)

    erased = retention.erase_expired(
        units_of_work, runtime.context, runtime.clock, runtime.retention_policy(), 10
    )

    assert (placed, erased) == ([200], 0)
    view = client.get(f"/api/v1/referrals/{rid}", headers=actors.worker).get_json()
    assert view["erased"] is False
    assert view["narrative"]
