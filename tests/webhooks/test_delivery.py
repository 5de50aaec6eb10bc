"""Webhook delivery, end to end over a real socket: outbox, worker, signatures, retries.

Every transition writes outbox rows in its own transaction; the worker (driven here round
by round on the test's FakeClock) POSTs them to the units' endpoints, signed the Standard
Webhooks way.  Each test points units at a real loopback receiver and checks what arrived
with the independent verifier in tests/support/standard_webhooks.py, never with the
sender's own signing code.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from referrals.config import Settings
from referrals.db.engine import Database
from referrals.db.models import OutboxMessage
from referrals.services.delivery import Round
from referrals.worker import Worker
from tests.api.helpers import (
    API,
    INTAKE,
    KUNGSHOLMEN,
    NORRMALM,
    REFERRER,
    SODERMALM,
    Actors,
    act,
    bearer,
    create,
    moment,
)
from tests.crypto.canary import cell_bytes, find, populate
from tests.support.clock import FakeClock
from tests.support.standard_webhooks import WebhookVerificationError, verify
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import Drop, Received, Slow, WebhookReceiver
from tests.webhooks.conftest import Headers

TIMEOUT = 1.0
MAX_ATTEMPTS = 3
BACKOFF_BASE = 10.0
DELIVERIES = f"{API}/admin/deliveries"
UNITS = (REFERRER, NORRMALM, SODERMALM, KUNGSHOLMEN, INTAKE)
WEBHOOK_ID = re.compile(r"msg_[0-9a-f]{32}")


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(
        instance_path=instance_path,
        webhook_timeout=TIMEOUT,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_backoff_base=BACKOFF_BASE,
        webhook_backoff_cap=3600.0,
    )


# --- helpers ----------------------------------------------------------------------------


def rounds_until_idle(worker: Worker, limit: int = 20) -> list[Round]:
    """Run rounds until one claims nothing (everything due is settled)."""
    done = []
    for _ in range(limit):
        result = worker.run_round()
        done.append(result)
        if result.claimed == 0:
            return done
    raise AssertionError(f"the worker still had work after {limit} rounds: {done}")


def counts(result: Round) -> tuple[int, int, int, int, int]:
    """(claimed, delivered, failed, dead, skipped)."""
    return result.claimed, result.delivered, result.failed, result.dead, result.skipped


def deliveries(client: FlaskClient, admin: Headers, **params: Any) -> list[dict[str, Any]]:
    """Every delivery the admin listing shows (all pages), oldest first."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get(DELIVERIES, query_string=query, headers=admin)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def only_delivery(client: FlaskClient, admin: Headers) -> dict[str, Any]:
    (item,) = deliveries(client, admin)
    return item


def outbox_count(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def signed_now(secret: str, request: Received, clock: FakeClock) -> Any:
    """Verify as a receiver whose clock agrees with the app's; the parsed body."""
    return verify(secret, request.headers, request.body, now=clock.now.timestamp())


def zulu(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def submit(client: FlaskClient, actors: Actors, **overrides: Any) -> str:
    rid = create(client, actors.worker, submit=True, **overrides)["id"]
    assert isinstance(rid, str)
    return rid


def step(
    client: FlaskClient,
    rid: str,
    action: str,
    headers: Headers,
    body: dict[str, Any] | None = None,
) -> None:
    response = act(client, rid, action, headers, body)
    assert response.status_code == 200, response.get_json()


# --- the first delivery -----------------------------------------------------------------


def test_a_submission_is_posted_to_the_receiving_unit_signed_and_with_ids_only(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    norrmalm = set_webhook(NORRMALM, receiver.url("/norrmalm"))
    set_webhook(REFERRER, receiver.url("/ungdomsjouren"))
    clock.advance(minutes=3)
    submitted_at = clock.now
    rid = submit(client, actors)
    clock.advance(seconds=7)

    assert counts(worker.run_round()) == (1, 1, 0, 0, 0)

    # The submitting unit is the actor: only the receiving unit hears of it.
    (request,) = receiver.received
    assert (request.method, request.path) == ("POST", "/norrmalm")
    assert WEBHOOK_ID.fullmatch(request.headers["webhook-id"]), request.headers
    assert request.headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    payload = signed_now(norrmalm, request, clock)
    assert payload == {
        "type": "referral.submitted",
        "timestamp": zulu(submitted_at),
        "data": {"referral_id": rid, "status": "requested"},
    }

    row = only_delivery(client, admin)
    assert row["webhook_id"] == request.headers["webhook-id"]
    assert row["webhook_id"] == f"msg_{uuid.UUID(row['id']).hex}"
    assert (row["event_type"], row["referral_id"], row["unit"]) == (
        "referral.submitted",
        rid,
        NORRMALM,
    )
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 1, None)
    assert moment(row["delivered_at"]) == clock.now
    assert moment(row["created_at"]) == submitted_at

    # Delivered is delivered: later rounds send nothing more.
    clock.advance(hours=1)
    assert counts(worker.run_round()) == (0, 0, 0, 0, 0)
    assert len(receiver.received) == 1


def test_a_round_claims_at_most_one_batch(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
) -> None:
    """The batch bounds what one worker holds: the rest stays claimable by other workers
    (and a batch is what the lease is sized for)."""
    worker.policy = replace(worker.policy, batch_size=3)
    set_webhook(NORRMALM, receiver.url())
    for _ in range(7):
        submit(client, actors)

    claimed = [result.claimed for result in rounds_until_idle(worker)]

    assert claimed == [3, 3, 1, 0]
    assert len(receiver.received) == 7
    assert {row["state"] for row in deliveries(client, admin)} == {"delivered"}


# --- signatures under attack ------------------------------------------------------------


def test_a_delivery_verifies_only_with_its_own_units_secret_and_unaltered(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
    db_connection: Connection,
) -> None:
    secrets = {unit: set_webhook(unit, receiver.url(f"/{unit}")) for unit in UNITS}
    assert len(set(secrets.values())) == len(UNITS), "two units share a signing secret"
    for secret in secrets.values():
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32

    submit(client, actors)
    worker.run_round()
    (request,) = receiver.received
    now = clock.now.timestamp()
    assert signed_now(secrets[NORRMALM], request, clock)["type"] == "referral.submitted"

    # A receiver holding another unit's secret cannot accept norrmalm's messages.
    for unit in set(UNITS) - {NORRMALM}:
        with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
            verify(secrets[unit], request.headers, request.body, now=now)

    # Nothing signed may be changed: the body (even its whitespace), the id, the time.
    payload = json.loads(request.body)
    forged_bodies = [
        json.dumps({**payload, "data": {**payload["data"], "status": "completed"}}),
        json.dumps({**payload, "data": {**payload["data"], "referral_id": str(uuid.uuid4())}}),
        json.dumps({**payload, "type": "referral.cancelled"}, separators=(",", ":")),
        json.dumps(payload),  # same JSON value, different bytes
    ]
    for forged in forged_bodies:
        assert forged.encode() != request.body
        with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
            verify(secrets[NORRMALM], request.headers, forged.encode(), now=now)
    sent_at = int(request.headers["webhook-timestamp"])
    for name, value in [
        ("webhook-id", f"msg_{uuid.uuid4().hex}"),
        ("webhook-timestamp", str(sent_at + 1)),
    ]:
        headers = {**request.headers, name: value}
        with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
            verify(secrets[NORRMALM], headers, request.body, now=now)
    # A captured delivery replayed later is stale to a receiver checking the time.
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secrets[NORRMALM], request.headers, request.body, now=now + 301)

    # The secret was shown once: never again in a unit answer, never stored in the clear.
    for path in (f"{API}/units/{NORRMALM}", f"{API}/units"):
        answer = client.get(path, headers=admin)
        assert answer.status_code == 200
        assert "webhook_secret" not in answer.get_data(as_text=True)
        assert secrets[NORRMALM] not in answer.get_data(as_text=True)
    stored = db_connection.execute(
        text("SELECT webhook_secret FROM units WHERE id = :id"), {"id": NORRMALM}
    ).scalar_one()
    key = base64.b64decode(secrets[NORRMALM].removeprefix("whsec_"))
    stored_bytes = cell_bytes(stored)
    assert stored_bytes
    assert secrets[NORRMALM].encode() not in stored_bytes
    assert secrets[NORRMALM].removeprefix("whsec_").encode() not in stored_bytes
    assert key not in stored_bytes
    assert key.hex().encode() not in stored_bytes


def test_after_rotation_only_the_new_secret_verifies(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    url = receiver.url()
    first = set_webhook(NORRMALM, url)
    submit(client, actors)
    worker.run_round()
    (before,) = receiver.received
    signed_now(first, before, clock)

    waiting = submit(client, actors)  # written before the rotation, sent after it
    rotated = put_webhook(client, admin, NORRMALM, url, rotate=True)["webhook_secret"]
    assert rotated != first
    assert rotated.startswith("whsec_")
    later = submit(client, actors)
    # A PUT that does not ask for rotation keeps the secret and does not show it.
    assert "webhook_secret" not in put_webhook(client, admin, NORRMALM, url)

    clock.advance(seconds=30)
    assert counts(worker.run_round()) == (2, 2, 0, 0, 0)
    after = receiver.received[1:]
    assert {signed_now(rotated, r, clock)["data"]["referral_id"] for r in after} == {
        waiting,
        later,
    }
    for request in after:
        with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
            signed_now(first, request, clock)


# --- retries, backoff, dead letters -----------------------------------------------------


def test_a_failed_delivery_is_retried_after_a_growing_backoff_as_the_same_message(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secret = set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(500, Slow(TIMEOUT + 1))
    submitted_at = clock.now
    rid = submit(client, actors)
    attempted_at: list[datetime] = []
    gaps: list[timedelta] = []

    for attempt, error in [(1, "HTTP 500"), (2, "timeout")]:
        attempted_at.append(clock.now)
        assert counts(worker.run_round()) == (1, 0, 1, 0, 0)
        row = only_delivery(client, admin)
        assert (row["state"], row["attempts"], row["last_error"]) == ("pending", attempt, error)
        assert moment(row["last_attempt_at"]) == clock.now
        due = moment(row["next_attempt_at"])
        gaps.append(due - clock.now)
        # Equal jitter: between half and all of base * 2^(attempt - 1).
        full = timedelta(seconds=BACKOFF_BASE * 2 ** (attempt - 1))
        assert full / 2 <= gaps[-1] <= full, (attempt, gaps)

        # Not before its time: a round now, or a second before it is due, sends nothing.
        assert counts(worker.run_round()) == (0, 0, 0, 0, 0)
        clock.now = due - timedelta(seconds=1)
        assert counts(worker.run_round()) == (0, 0, 0, 0, 0)
        assert len(receiver.received) == attempt
        clock.now = due + timedelta(seconds=1)

    assert gaps[1] >= gaps[0], gaps
    attempted_at.append(clock.now)
    assert counts(worker.run_round()) == (1, 1, 0, 0, 0)
    row = only_delivery(client, admin)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 3, None)
    assert moment(row["delivered_at"]) == clock.now

    requests = receiver.received
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {row["webhook_id"]}
    assert {r.body for r in requests} == {requests[0].body}
    # Each attempt is signed when it is made: fresh to a receiver at that moment.
    for request, at in zip(requests, attempted_at, strict=True):
        assert request.headers["webhook-timestamp"] == str(int(at.timestamp()))
        payload = verify(secret, request.headers, request.body, now=at.timestamp())
        assert payload == {
            "type": "referral.submitted",
            "timestamp": zulu(submitted_at),
            "data": {"referral_id": rid, "status": "requested"},
        }


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [(0.0, [5.0, 10.0, 12.5, 12.5]), (1.0, [10.0, 20.0, 25.0, 25.0])],
    ids=["least-jitter", "most-jitter"],
)
def test_the_backoff_doubles_within_its_jitter_up_to_the_cap(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
    jitter: float,
    expected: list[float],
) -> None:
    """The jitter's extremes pin the schedule: base * 2^(n-1), half of it fixed, capped."""
    assert worker.policy.backoff_base == BACKOFF_BASE  # the settings reach the worker
    worker.policy = replace(worker.policy, jitter=lambda: jitter, max_attempts=5, backoff_cap=25)
    set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(*[503] * 5)
    submit(client, actors)

    gaps = []
    for _ in range(4):
        assert counts(worker.run_round()) == (1, 0, 1, 0, 0)
        due = moment(only_delivery(client, admin)["next_attempt_at"])
        gaps.append((due - clock.now).total_seconds())
        clock.now = due
    assert gaps == expected
    assert counts(worker.run_round()) == (1, 0, 0, 1, 0)
    assert len(receiver.received) == 5


@pytest.mark.parametrize(
    ("answer", "delivered", "error"),
    [
        (200, True, None),
        (201, True, None),
        (202, True, None),
        (204, True, None),
        (301, False, "HTTP 301"),
        (302, False, "HTTP 302"),
        (400, False, "HTTP 400"),
        (404, False, "HTTP 404"),
        (410, False, "HTTP 410"),
        (429, False, "HTTP 429"),
        (503, False, "HTTP 503"),
        (Drop(), False, "connection failed"),
    ],
    ids=str,
)
def test_only_a_2xx_answer_counts_as_delivered(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    answer: int | Drop,
    delivered: bool,
    error: str | None,
) -> None:
    set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(answer)
    submit(client, actors)

    result = worker.run_round()

    assert (result.delivered, result.failed) == ((1, 0) if delivered else (0, 1))
    row = only_delivery(client, admin)
    assert row["state"] == ("delivered" if delivered else "pending")
    assert row["last_error"] == error
    assert len(receiver.received) == 1


class _Answering(ThreadingHTTPServer):
    """A hostile endpoint: answers every request with a fixed status, headers and body."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.answer = (status, headers, body)
        self.hits: deque[str] = deque()
        super().__init__(("127.0.0.1", 0), _AnsweringHandler)


class _AnsweringHandler(BaseHTTPRequestHandler):
    server: _Answering

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits.append(self.path)
        status, headers, body = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def answering(status: int, headers: dict[str, str], body: bytes) -> Iterator[_Answering]:
    server = _Answering(status, headers, body)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_receivers_answer_body_is_never_kept_and_redirects_are_not_followed(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
) -> None:
    leak = b"Stacktrace-kanariefagel: Zorbalina Kvittrasdotter 201207234170 q8v"
    redirect = {"Location": receiver.url("/elsewhere")}
    with (
        answering(500, {"Content-Type": "text/plain"}, leak) as failing,
        answering(307, redirect, leak) as moving,
    ):
        set_webhook(NORRMALM, f"http://127.0.0.1:{failing.server_address[1]}/hook")
        set_webhook(SODERMALM, f"http://127.0.0.1:{moving.server_address[1]}/hook")
        submit(client, actors)
        submit(client, actors, subject={"district": SODERMALM})

        assert counts(worker.run_round()) == (2, 0, 2, 0, 0)
        assert (list(failing.hits), list(moving.hits)) == (["/hook"], ["/hook"])

    # The redirect target heard nothing: the configured endpoint is the only one.
    assert receiver.received == []
    errors = {row["unit"]: row["last_error"] for row in deliveries(client, admin)}
    assert errors == {NORRMALM: "HTTP 500", SODERMALM: "HTTP 307"}
    listing = client.get(DELIVERIES, headers=admin).get_data()
    assert find(listing, [("answer body", leak), ("answer body start", leak[:24])]) == []
    for row in db_connection.execute(text("SELECT * FROM outbox")).mappings():
        for column, value in row.items():
            assert b"kanariefagel" not in cell_bytes(value), column


def test_a_message_that_keeps_failing_is_dead_lettered_and_replayed_as_itself(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    dev_token: Callable[..., str],
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secret = set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(500, Drop(), 500)
    rid = submit(client, actors)

    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        outcomes.append(counts(worker.run_round()))
        clock.now = moment(only_delivery(client, admin)["next_attempt_at"]) + timedelta(seconds=1)
    assert outcomes == [(1, 0, 1, 0, 0), (1, 0, 1, 0, 0), (1, 0, 0, 1, 0)]
    clock.advance(hours=2)
    assert counts(worker.run_round()) == (0, 0, 0, 0, 0), "a dead message was sent again"
    assert len(receiver.received) == MAX_ATTEMPTS

    (dead,) = deliveries(client, admin, state="dead")
    assert dead["webhook_id"] == receiver.received[0].headers["webhook-id"]
    assert (dead["event_type"], dead["referral_id"], dead["unit"]) == (
        "referral.submitted",
        rid,
        NORRMALM,
    )
    assert (dead["state"], dead["last_error"]) == ("dead", "HTTP 500")
    assert dead["attempts"] == MAX_ATTEMPTS
    assert dead["delivered_at"] is None
    assert deliveries(client, admin, state="pending") == []
    replay_path = f"{DELIVERIES}/{dead['id']}/replay"

    # Only an administrator sees the queue or replays from it.
    for role, unit in [("caseworker", NORRMALM), ("youth_worker", REFERRER), ("auditor", None)]:
        headers = bearer(dev_token(role, unit))
        listed = client.get(DELIVERIES, query_string={"state": "dead"}, headers=headers)
        assert listed.status_code == 403, (role, listed.get_json())
        replayed = client.post(replay_path, headers=headers)
        assert replayed.status_code == 403, (role, replayed.get_json())
    assert only_delivery(client, admin) == dead

    replayed = client.post(replay_path, headers=admin)
    assert replayed.status_code == 200, replayed.get_json()
    again = replayed.get_json()
    assert (again["id"], again["webhook_id"]) == (dead["id"], dead["webhook_id"])
    assert (again["state"], again["attempts"], again["last_error"]) == ("pending", 0, None)
    assert moment(again["next_attempt_at"]) == clock.now
    conflict = client.post(replay_path, headers=admin)
    assert conflict.status_code == 409, conflict.get_json()

    assert counts(worker.run_round()) == (1, 1, 0, 0, 0)
    last = receiver.received[-1]
    assert last.headers["webhook-id"] == dead["webhook_id"]
    assert last.body == receiver.received[0].body
    assert signed_now(secret, last, clock)["data"] == {"referral_id": rid, "status": "requested"}
    row = only_delivery(client, admin)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 1, None)

    assert client.post(replay_path, headers=admin).status_code == 409
    unknown = client.post(f"{DELIVERIES}/{uuid.uuid4()}/replay", headers=admin)
    assert unknown.status_code == 404
    assert deliveries(client, admin, state="dead") == []


# --- who hears of what ------------------------------------------------------------------


def test_every_event_reaches_the_other_end_of_the_loop_with_an_id_of_its_own(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secrets = {unit: set_webhook(unit, receiver.url(f"/{unit}")) for unit in UNITS}
    expected: list[tuple[str, str, str, str]] = []  # (unit, event, referral, status)

    def expect(unit: str, event: str, rid: str, status: str) -> None:
        expected.append((unit, f"referral.{event}", rid, status))
        clock.advance(seconds=5)

    nrm, sdm, ung, kgh = actors.norrmalm, actors.sodermalm, actors.worker, actors.kungsholmen
    # Accepted and worked to completion: the sender hears every step.
    done = submit(client, actors)
    expect(NORRMALM, "submitted", done, "requested")
    for action, body, event, status in [
        ("accept", {}, "accepted", "accepted"),
        ("start", {}, "started", "in_progress"),
        ("hold", {"reason_code": "awaiting_information"}, "held", "on_hold"),
        ("resume", {}, "resumed", "in_progress"),
        ("complete", {"outcome_code": "support_started"}, "completed", "completed"),
    ]:
        step(client, done, action, nrm, body)
        expect(REFERRER, event, done, status)
    # Declined by the receiver: the sender hears.
    declined = submit(client, actors, subject={"district": SODERMALM})
    expect(SODERMALM, "submitted", declined, "requested")
    step(client, declined, "decline", sdm, {"reason_code": "no_capacity"})
    expect(REFERRER, "declined", declined, "rejected")
    # Withdrawn by the sender: the receiver hears.
    withdrawn = submit(client, actors)
    expect(NORRMALM, "submitted", withdrawn, "requested")
    step(client, withdrawn, "cancel", ung, {"reason_code": "no_longer_needed"})
    expect(NORRMALM, "cancelled", withdrawn, "cancelled")
    # Cancelled by the receiver after acceptance: the sender hears.
    dropped = submit(client, actors)
    expect(NORRMALM, "submitted", dropped, "requested")
    step(client, dropped, "accept", nrm)
    expect(REFERRER, "accepted", dropped, "accepted")
    step(client, dropped, "cancel", nrm, {"reason_code": "subject_declined"})
    expect(REFERRER, "cancelled", dropped, "cancelled")
    # Failed: the sender hears.
    failed = submit(client, actors)
    expect(NORRMALM, "submitted", failed, "requested")
    step(client, failed, "accept", nrm)
    expect(REFERRER, "accepted", failed, "accepted")
    step(client, failed, "fail", nrm, {"reason_code": "subject_unreachable"})
    expect(REFERRER, "failed", failed, "failed")
    # Redirected: the sender and the new unit hear, the redirecting unit (the actor) not;
    # the sender then marks it in error, and only the new receiving unit hears.
    moved = submit(client, actors)
    expect(NORRMALM, "submitted", moved, "requested")
    step(client, moved, "redirect", nrm, {"unit": KUNGSHOLMEN, "reason_code": "wrong_district"})
    expected.append((REFERRER, "referral.redirected", moved, "requested"))
    expect(KUNGSHOLMEN, "redirected", moved, "requested")
    step(client, moved, "mark-error", ung, {"reason_code": "data_entry_error"})
    expect(KUNGSHOLMEN, "entered_in_error", moved, "entered_in_error")
    # Kungsholmen marks its own referral in error: only the sender hears.
    theirs = submit(client, actors, subject={"district": KUNGSHOLMEN})
    expect(KUNGSHOLMEN, "submitted", theirs, "requested")
    step(client, theirs, "mark-error", kgh, {"reason_code": "wrong_subject"})
    expect(REFERRER, "entered_in_error", theirs, "entered_in_error")
    # No district: the catch-all sends it to intake.
    unplaced = submit(client, actors, subject={"district": None})
    expect(INTAKE, "submitted", unplaced, "requested")

    results = rounds_until_idle(worker)
    assert sum(r.delivered for r in results) == len(expected)
    assert sum(r.failed + r.dead + r.skipped for r in results) == 0

    arrived = []
    for request in receiver.received:
        unit = request.path.removeprefix("/")
        payload = signed_now(secrets[unit], request, clock)
        assert set(payload) == {"type", "timestamp", "data"}
        assert set(payload["data"]) == {"referral_id", "status"}
        data = payload["data"]
        arrived.append((unit, payload["type"], data["referral_id"], data["status"]))
    assert Counter(arrived) == Counter(expected)

    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(set(ids)) == len(ids) == len(expected), "two events shared a webhook-id"
    assert set(ids) == {row["webhook_id"] for row in deliveries(client, admin)}


def test_an_overdue_referral_is_announced_to_both_ends_once_per_deadline(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secrets = {unit: set_webhook(unit, receiver.url(f"/{unit}")) for unit in (REFERRER, NORRMALM)}
    created = create(client, actors.worker, submit=True, priority="acute")
    rid, due = created["id"], moment(created["due_at"])
    rounds_until_idle(worker)
    assert len(receiver.received) == 1  # the submission
    receiver.clear()

    clock.now = due - timedelta(seconds=1)
    assert worker.run_round().escalated == 0
    clock.now = due + timedelta(minutes=1)
    first = worker.run_round()
    assert (first.escalated, first.delivered) == (1, 2)
    arrived = {
        (r.path.removeprefix("/"), signed_now(secrets[r.path.removeprefix("/")], r, clock)["type"])
        for r in receiver.received
    }
    assert arrived == {(NORRMALM, "referral.overdue"), (REFERRER, "referral.unanswered")}
    for request in receiver.received:
        assert json.loads(request.body)["data"] == {"referral_id": rid, "status": "requested"}

    clock.advance(hours=6)
    assert worker.run_round().escalated == 0
    assert len(receiver.received) == 2
    assert len(deliveries(client, admin)) == 3


def test_a_unit_without_an_enabled_endpoint_is_skipped_and_nothing_is_sent(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    # Södermalm never had an endpoint; Norrmalm has one, registered but not enabled yet.
    secret = set_webhook(NORRMALM, receiver.url(), enabled=False)
    submit(client, actors, subject={"district": SODERMALM})
    paused = submit(client, actors)

    assert counts(worker.run_round()) == (2, 0, 0, 0, 2)
    assert receiver.received == []
    skipped = deliveries(client, admin, state="skipped")
    assert {row["unit"] for row in skipped} == {SODERMALM, NORRMALM}
    assert {row["attempts"] for row in skipped} == {1}
    clock.advance(hours=1)
    assert counts(worker.run_round()) == (0, 0, 0, 0, 0)

    # Enabled later (same secret, not shown again), a skipped message can be replayed.
    assert "webhook_secret" not in put_webhook(client, admin, NORRMALM, receiver.url())
    (norrmalm_row,) = [row for row in skipped if row["unit"] == NORRMALM]
    replayed = client.post(f"{DELIVERIES}/{norrmalm_row['id']}/replay", headers=admin)
    assert replayed.status_code == 200, replayed.get_json()
    assert counts(worker.run_round()) == (1, 1, 0, 0, 0)
    (request,) = receiver.received
    assert request.headers["webhook-id"] == norrmalm_row["webhook_id"]
    assert signed_now(secret, request, clock)["data"]["referral_id"] == paused

    # An endpoint removed again: the unit's later events are skipped, nothing is sent.
    put_webhook(client, admin, NORRMALM, None)
    submit(client, actors)
    assert counts(worker.run_round()) == (1, 0, 0, 0, 1)
    assert len(receiver.received) == 1


# --- nothing personal, nothing that did not happen ----------------------------------------


def test_no_personal_value_reaches_a_receiver_or_the_outbox(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
) -> None:
    for unit in UNITS:
        set_webhook(unit, receiver.url(f"/{unit}"))
    scenario = populate(client, actors)  # five referrals, canaries everywhere, many steps
    needles = scenario.canaries.needles
    assert len(scenario.canaries.values) > 30

    results = rounds_until_idle(worker)
    rows = list(db_connection.execute(text("SELECT * FROM outbox")).mappings())
    assert len(rows) >= 12, "the scenario should have announced a dozen transitions"
    assert sum(r.delivered for r in results) == len(rows) == len(receiver.received)
    assert {row["state"] for row in rows} == {"delivered"}

    hits = []
    for request in receiver.received:
        wire = b"\n".join(
            [
                f"{request.method} {request.path}".encode(),
                *(f"{k}: {v}".encode() for k, v in request.headers.items()),
                request.body,
            ]
        )
        where = f"{request.path} {request.headers['webhook-id']}"
        hits += [f"{where}: {label}" for label in find(wire, needles)]
    for row in rows:
        for column, value in row.items():
            hits += [f"outbox.{column}: {h}" for h in find(cell_bytes(value), needles)]
    listing = client.get(DELIVERIES, query_string={"limit": 200}, headers=admin).get_data()
    hits += [f"delivery listing: {h}" for h in find(listing, needles)]
    assert hits == []


def failing_record(seen: list[int]) -> Callable[..., None]:
    """An audit writer that notes how many outbox rows its transaction holds, then fails."""

    def record(session: Session, *_args: Any, **_kwargs: Any) -> None:
        seen.append(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
        raise OperationalError("INSERT", {}, Exception("disk full"))

    return record


def test_a_change_that_rolls_back_announces_nothing(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    database: Database,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {unit: set_webhook(unit, receiver.url(f"/{unit}")) for unit in (REFERRER, NORRMALM)}
    created = create(client, actors.worker, submit=True)
    rid = created["id"]
    rounds_until_idle(worker)
    assert len(receiver.received) == 1
    before = outbox_count(database)

    refused = [
        ("decline", {"reason_code": "not-a-reason"}, {}, 422),
        ("decline", {}, {}, 422),  # a reason is required
        ("accept", {}, {"If-Match": '"v999"'}, 412),
        ("start", {}, {}, 409),  # not accepted yet
        ("cancel", {"reason_code": "duplicate"}, {}, 403),  # the receiver may not withdraw
    ]
    for action, body, extra, status in refused:
        response = act(client, rid, action, {**actors.norrmalm, **extra}, body)
        assert response.status_code == status, (action, response.get_json())
    assert outbox_count(database) == before

    # The outbox row is written, then the audit event cannot be: all of it rolls back.
    seen: list[int] = []
    monkeypatch.setattr("referrals.services.uow.record", failing_record(seen))
    response = act(client, rid, "accept", actors.norrmalm, {"assignee": "dev-caseworker@norrmalm"})
    assert response.status_code == 503, response.get_json()
    assert seen == [before + 1], "the audit failure did not come after the outbox row"
    monkeypatch.undo()
    assert outbox_count(database) == before
    clock.advance(minutes=1)
    assert counts(worker.run_round()) == (0, 0, 0, 0, 0)
    assert len(receiver.received) == 1

    # The same change, made for real, is announced once.
    step(client, rid, "accept", actors.norrmalm, {})
    assert outbox_count(database) == before + 1
    assert counts(worker.run_round()) == (1, 1, 0, 0, 0)
    request = receiver.received[-1]
    assert request.path == f"/{REFERRER}"
    assert signed_now(secrets[REFERRER], request, clock)["data"] == {
        "referral_id": rid,
        "status": "accepted",
    }
