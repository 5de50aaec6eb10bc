"""Receivers that fight back: slow drips, silence, redirects, and a worker that lost its lease.

A webhook endpoint is whatever an admin typed in, run by someone else.  A receiver that
trickles its status line and headers a line at a time keeps a per-socket-operation
timeout from ever firing; one such endpoint must not stall the worker and so every other
unit's deliveries.  These receivers are raw TCP servers on loopback, written here, so they
can misbehave in ways an HTTP server library would not let them.

The second half is about claims: a worker whose lease ran out while it was busy with the
first messages of its batch must not send the rest once another worker has taken them
over (the receiver would see the same webhook-id twice, at best).
"""

from __future__ import annotations

import contextlib
import io
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals.config import Settings
from referrals.db.models import OutboxMessage
from referrals.runtime import Runtime
from referrals.services import delivery
from referrals.services.delivery import DeliveryPolicy, Round, deliver_round
from referrals.webhooks.sender import WebhookSender
from referrals.worker import Worker
from tests.api.helpers import NORRMALM, Actors, create
from tests.support.clock import FakeClock
from tests.support.standard_webhooks import verify
from tests.support.webhook_receiver import Answer, WebhookReceiver

TIMEOUT = 0.5
# What the wall clock may add to the timeout: thread start, connect, the database.
MARGIN = 1.0
LEASE = 2.0
# How long a hostile receiver keeps going if nobody stops it (far beyond any deadline).
HOSTILE_FOR = 10.0
DRIP_EVERY = 0.2


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(
        instance_path=instance_path,
        webhook_timeout=TIMEOUT,
        webhook_max_attempts=3,
        webhook_backoff_base=10.0,
        worker_lease=LEASE,
    )


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def submit(client: FlaskClient, actors: Actors) -> str:
    """A referral submitted to Norrmalm (its district): one outbox row for Norrmalm."""
    rid = create(client, actors.worker, submit=True)["id"]
    assert isinstance(rid, str)
    return rid


def outbox_rows(app: Flask) -> dict[str, SimpleNamespace]:
    """Every outbox row (its columns, read now) by its webhook-id."""
    table = OutboxMessage.__table__
    with runtime_of(app).unit_of_work() as uow:
        rows = uow.session.execute(select(table)).mappings().all()
    return {f"msg_{row['id'].hex}": SimpleNamespace(**row) for row in rows}


# --- hostile receivers: raw TCP on loopback ---------------------------------------------

Behaviour = Callable[[io.BufferedIOBase, threading.Event], None]
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Hostile(socketserver.ThreadingTCPServer):
    # Handler threads are joined on close: no hostile thread outlives its test.
    daemon_threads = False
    block_on_close = True

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.requests: list[bytes] = []
        self.failures: list[BaseException | None] = []
        super().__init__(("127.0.0.1", 0), _HostileHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.failures.append(sys.exc_info()[1])


class _HostileHandler(socketserver.StreamRequestHandler):
    server: _Hostile
    timeout = 5  # a silent client cannot hold a handler thread (and so the test) forever

    def handle(self) -> None:
        with contextlib.suppress(*_CLIENT_GONE):
            self.server.requests.append(_read_request(self.rfile))
            self.server.behaviour(self.wfile, self.server.stop)


def _read_request(rfile: io.BufferedIOBase) -> bytes:
    """The request line, headers and Content-Length body, as sent."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = rfile.readline(65537)
        if not line:
            return head
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + rfile.read(length)


def drip_headers(wfile: io.BufferedIOBase, stop: threading.Event) -> None:
    """200 OK, then one more header line every 0.2 s: the header block never ends in time.
    Each write resets a per-operation socket timeout."""
    wfile.write(b"HTTP/1.1 200 OK\r\n")
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < HOSTILE_FOR and not stop.wait(DRIP_EVERY):
        wfile.write(f"X-Drip-{n}: {'z' * 16}\r\n".encode())
        n += 1


def silent(_wfile: io.BufferedIOBase, stop: threading.Event) -> None:
    """Accept and read the request, then never answer (and never close)."""
    stop.wait(HOSTILE_FOR)


def drip_body(wfile: io.BufferedIOBase, stop: threading.Event) -> None:
    """A complete 200 header block announcing a huge body, then the body a byte at a time."""
    wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n")
    started = time.monotonic()
    while time.monotonic() - started < HOSTILE_FOR and not stop.wait(DRIP_EVERY):
        wfile.write(b"x")


def redirect_to(location: str) -> Behaviour:
    def behave(wfile: io.BufferedIOBase, _stop: threading.Event) -> None:
        wfile.write(
            b"HTTP/1.1 302 Found\r\nLocation: "
            + location.encode()
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    return behave


@contextlib.contextmanager
def hostile(behaviour: Behaviour) -> Iterator[_Hostile]:
    server = _Hostile(behaviour)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()  # end every drip and silence at once
        server.shutdown()
        server.server_close()  # joins the handler threads
        thread.join()
    assert server.failures == [], server.failures


def url_of(server: _Hostile, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def timed_post(url: str, timeout: float = TIMEOUT) -> tuple[str | None, float]:
    sender = WebhookSender(timeout)
    started = time.monotonic()
    try:
        result = sender.post(url, b"{}", {"content-type": "application/json"})
    finally:
        sender.close()
    return result, time.monotonic() - started


# --- the sender against them ------------------------------------------------------------


def test_a_receiver_dripping_its_headers_is_cut_off_at_the_timeout() -> None:
    """Attack: a "slow loris" in reverse.  The receiver answers a line every 0.2 s, which
    resets a per-read timeout each time; with requests (timeout=0.5 per socket operation)
    the worker was held for as long as the receiver liked (here 10 s)."""
    with hostile(drip_headers) as server:
        result, elapsed = timed_post(url_of(server))
        assert server.requests, "the request never reached the receiver"
    assert result == "timeout"
    assert elapsed < TIMEOUT + MARGIN, f"held for {elapsed:.2f} s by a dripping receiver"


def test_a_receiver_that_never_answers_times_out() -> None:
    """Attack: accept the connection, read the request, say nothing."""
    with hostile(silent) as server:
        result, elapsed = timed_post(url_of(server))
        assert len(server.requests) == 1
    assert result == "timeout"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN, elapsed


def test_a_200_whose_body_never_ends_is_delivered_without_reading_the_body() -> None:
    """Attack: a 2xx status, then an endless body.  The status is the answer; the body is
    never read (it is never kept either), so the drip cannot hold the worker."""
    with hostile(drip_body) as server:
        result, elapsed = timed_post(url_of(server), timeout=2.0)
        assert len(server.requests) == 1
    assert result is None
    assert elapsed < 1.0, f"the body drip held the sender {elapsed:.2f} s"


def test_a_redirect_is_a_failure_and_its_target_hears_nothing(
    receiver: WebhookReceiver,
) -> None:
    """Attack: a receiver bounces the signed delivery to a third party (or to an internal
    address the worker can reach).  The configured endpoint is the only one."""
    with hostile(redirect_to(receiver.url("/elsewhere"))) as server:
        result, _ = timed_post(url_of(server))
        assert len(server.requests) == 1
    assert result == "HTTP 302"
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_",
        "http:///hook",
        "https://",
        "127.0.0.1:80/hook",
    ],
)
def test_an_endpoint_that_is_not_http_to_a_host_is_refused_without_a_connection(
    url: str,
) -> None:
    """Attack: a stored endpoint that bypassed validation (edited in the database, an old
    row) must not make the worker open files or speak other protocols."""
    result, elapsed = timed_post(url)
    assert result == "invalid endpoint"
    assert elapsed < 0.2


# --- the worker against them -------------------------------------------------------------


def test_a_dripping_endpoint_costs_the_worker_one_timeout_and_the_message_waits(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    """Attack: one unit's endpoint drips its headers; the round (and so every other unit's
    deliveries) must still finish within the timeout, and the message stay for a retry."""
    with hostile(drip_headers) as server:
        set_webhook(NORRMALM, url_of(server))
        submit(client, actors)
        started = time.monotonic()
        result = worker.run_round()
        elapsed = time.monotonic() - started
        assert len(server.requests) == 1
    assert (result.claimed, result.delivered, result.failed) == (1, 0, 1)
    # The round also claims and settles in the database: a little more slack than the
    # sender alone (the drip would go on for 10 s).
    assert elapsed < TIMEOUT + 2 * MARGIN, f"one dripping endpoint held the round {elapsed:.2f} s"
    (row,) = outbox_rows(app).values()
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "timeout")
    assert row.next_attempt_at > clock.now


# --- a lease lost mid-batch ---------------------------------------------------------------


class InterleavingReceiver(WebhookReceiver):
    """A receiver that runs ``during_first`` inside its first request, before answering:
    whatever it does happens while the sending worker waits for that answer."""

    def __init__(self, during_first: Callable[[], None]) -> None:
        super().__init__()
        self._during_first: Callable[[], None] | None = during_first

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        answer = super()._record(method, path, headers, body)
        with self._lock:
            hook, self._during_first = self._during_first, None
        if hook is not None:
            hook()
        return answer


def webhook_ids(received: list[Any]) -> list[str]:
    return [request.headers["webhook-id"] for request in received]


def test_a_worker_whose_lease_ran_out_mid_batch_sends_nothing_another_worker_took(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    """Attack (or plain bad luck): worker A claims a batch, then its first receiver is slow
    enough that A's lease on the rest of the batch runs out.  Worker B claims those expired
    messages and delivers them.  A, answered at last, must not send them again: before the
    fix it did (every message of the batch arrived twice, B's copy of the first as well)."""
    runtime = runtime_of(app)
    policy = runtime.delivery_policy()
    assert policy.lease_time.total_seconds() == LEASE
    # A waits long enough for B's whole round to happen inside A's first request.
    policy_a = replace(policy, timeout=5.0)
    sender_a, sender_b = WebhookSender(policy_a.timeout), WebhookSender(policy.timeout)
    claimed_at = clock.now
    rounds_b: list[Round] = []

    def lease_runs_out_and_worker_b_runs() -> None:
        clock.advance(seconds=LEASE + 1)
        rounds_b.append(deliver_round(runtime.unit_of_work, runtime.vault, sender_b, clock, policy))

    try:
        with InterleavingReceiver(lease_runs_out_and_worker_b_runs) as receiver:
            secret = set_webhook(NORRMALM, receiver.url())
            rids = {submit(client, actors) for _ in range(3)}
            round_a = deliver_round(runtime.unit_of_work, runtime.vault, sender_a, clock, policy_a)
            received = receiver.received
    finally:
        sender_a.close()
        sender_b.close()

    (round_b,) = rounds_b
    # A claimed all three and delivered only the one in hand when the lease ran out; B
    # took the other two.  Each result is counted by the worker that made it.
    assert (round_a.claimed, round_a.delivered, round_a.failed) == (3, 1, 0)
    assert (round_b.claimed, round_b.delivered, round_b.failed) == (2, 2, 0)
    ids = webhook_ids(received)
    assert len(ids) == len(set(ids)) == 3, f"a webhook-id arrived twice: {ids}"
    rows = outbox_rows(app)
    assert set(ids) == set(rows)
    assert {
        verify(secret, r.headers, r.body, now=clock.now.timestamp())["data"]["referral_id"]
        for r in received
    } == rids

    first = ids[0]  # A's, sent before the lease ran out
    assert (rows[first].state, rows[first].attempts) == ("delivered", 1)
    assert rows[first].last_attempt_at == claimed_at
    for taken in ids[1:]:
        # B's attempt: claimed (attempts + 1) and settled by B, after the lease ran out.
        row = rows[taken]
        assert (row.state, row.attempts, row.last_error) == ("delivered", 2, None)
        assert row.last_attempt_at == clock.now
        assert row.delivered_at == clock.now


def test_a_claim_taken_over_is_neither_sent_nor_counted(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    """The same race step by step: A claims and loads, the lease runs out, B runs a whole
    round, then A goes on with what it loaded.  A sends nothing and reports no result."""
    runtime = runtime_of(app)
    policy = runtime.delivery_policy()
    uows, vault = runtime.unit_of_work, runtime.vault
    set_webhook(NORRMALM, receiver.url())
    for _ in range(2):
        submit(client, actors)

    token_a, ids_a = delivery.claim(uows, clock, policy)
    items_a = delivery.load(uows, vault, ids_a)
    assert len(items_a) == 2

    clock.advance(seconds=LEASE + 1)
    sender = WebhookSender(policy.timeout)
    try:
        round_b = deliver_round(uows, vault, sender, clock, policy)
        b_delivered_at = clock.now
        assert (round_b.claimed, round_b.delivered) == (2, 2)
        assert len(receiver.received) == 2

        clock.advance(seconds=1)
        for item in items_a:
            assert delivery._send(uows, sender, clock, policy, token_a, item) is None
    finally:
        sender.close()

    ids = webhook_ids(receiver.received)
    assert len(ids) == len(set(ids)) == 2, f"A sent again what B had delivered: {ids}"
    for row in outbox_rows(app).values():
        assert (row.state, row.attempts) == ("delivered", 2)
        assert row.delivered_at == b_delivered_at  # B's result stands
        assert row.claim_token != token_a


# --- the batch bounds a claim --------------------------------------------------------------


def claimed_by(app: Flask, token: uuid.UUID, now: datetime) -> int:
    with runtime_of(app).unit_of_work() as uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.claim_token == token, OutboxMessage.locked_until > now)
            )
            or 0
        )


def test_one_claim_takes_at_most_one_batch(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    clock: FakeClock,
) -> None:
    """A claim that reports a batch but locks more (an UPDATE whose LIMIT the planner
    applied to the wrong side) hides the rest from every other worker for a whole lease."""
    runtime = runtime_of(app)
    policy: DeliveryPolicy = replace(runtime.delivery_policy(), batch_size=3)
    for _ in range(7):
        submit(client, actors)

    sizes = []
    for _ in range(4):
        token, ids = delivery.claim(runtime.unit_of_work, clock, policy)
        assert len(ids) == len(set(ids)) <= policy.batch_size
        # Exactly what was reported is held under the token: no more.
        assert claimed_by(app, token, clock.now) == len(ids)
        sizes.append(len(ids))
    assert sizes == [3, 3, 1, 0]
