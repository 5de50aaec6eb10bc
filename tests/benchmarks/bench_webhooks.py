"""What webhooks cost: the outbox row a transition writes, and the worker's delivery rate.

    .venv/bin/python -m tests.benchmarks.bench_webhooks

One app on a throw-away PostgreSQL database (``tests.support.databases.postgres_database``),
real commits, the real clock, measured in one process and one run.

1. The transactional outbox on the request path.  Drafts routed to norrmalm are created
   first (not timed); then ``POST /api/v1/referrals/{id}/submit`` is timed through the
   Flask test client, as the sending youth worker, in two variants:

     A. as shipped: the submit's transaction also writes one outbox row, for norrmalm
        (the sender is the caller, so it is not told of its own change);
     B. the same app with ``referrals.services.outbox.announce`` replaced, inside this
        script only, by a function that does nothing: the submit writes no outbox row.

   Rounds alternate A and B (ABBA...) so both see the same machine noise; each variant's
   figure is the median over its rounds of requests per second.  After every round (not
   timed) the script checks the round's referrals: one referral.submitted row each for
   norrmalm in A, none in B.

2. Worker delivery to a real HTTP endpoint.  norrmalm's webhook is pointed (admin PUT) at a
   ``tests.support.webhook_receiver.WebhookReceiver`` on loopback, answering 200 at once.
   For each drain MESSAGES pending messages are written in one transaction (with
   ``outbox.announce``, the product's own path), then drained by ``Worker.run_round()`` in
   a loop until a round claims nothing: with one worker, or with two threads each running
   its own ``Worker`` (own HTTP session, shared engine), which share the queue through
   PostgreSQL's ``FOR UPDATE SKIP LOCKED``.  Drains alternate 1, 2, 2, 1...; the figure is
   the median of messages per second.  After every drain the script checks that each
   message arrived exactly once (distinct webhook-ids at the receiver == requests ==
   MESSAGES, the same ids as the outbox rows), with a valid signature, and that every row
   is delivered after one attempt.  Each drain also prints how the messages split between
   the workers and the most one round claimed, which should never exceed
   ``worker_batch_size``: when it does, one worker has taken most of the queue in one
   claim and the two-worker figure says more about that than about sharing the queue.
   The two workers are threads of this one process, which also runs the receiver: they
   share one GIL, so this is a floor for what two worker processes (``referrals worker``
   twice) would do.  The receiver speaks HTTP/1.0, so every delivery opens a new loopback
   connection.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db.models import OutboxMessage, Referral
from referrals.runtime import OPERATOR, Runtime
from referrals.services import outbox, seeding
from referrals.worker import Worker
from tests.benchmarks.report import ab_report_clocks, say
from tests.support import standard_webhooks
from tests.support.databases import postgres_database
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import WebhookReceiver

ROUNDS = 16  # submit rounds per variant, after one warm-up round each
PER_ROUND = 20  # submits per round
MESSAGES = 1000  # pending messages per measured drain
WARMUP_MESSAGES = 200  # per drain of the warm-up pair (1 worker, then 2)
DRAINS = 4  # measured drains per worker count
RECEIVER = "norrmalm"

DRAFT = {
    "subject": {"name": "Benchmark Påhittadsson", "district": "norrmalm"},
    "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-000 56 78"},
    "categories": ["drugs", "school_absence"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "place_met": "Påhittade torget, vid fontänen",
    "narrative": "Påhittad berättelse. " * 40,
}

Headers = dict[str, str]


# --- 1. the outbox row on the request path -----------------------------------------------


def _announce_nothing(*_args: Any, **_kwargs: Any) -> None:
    """The outbox write, left out: no row, nothing else changed."""


def silent() -> AbstractContextManager[Any]:
    return mock.patch.object(outbox, "announce", _announce_nothing)


VARIANTS: dict[str, Callable[[], AbstractContextManager[Any]]] = {"A": nullcontext, "B": silent}
LABELS = {"A": "with outbox", "B": "without outbox"}
EXPECTED_ROWS = {"A": 1, "B": 0}  # per submit


def drafts(client: FlaskClient, headers: Headers, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        created = client.post("/api/v1/referrals", json=DRAFT, headers=headers)
        if created.status_code != 201:
            raise SystemExit(f"create failed: {created.status_code} {created.get_data()!r}")
        ids.append(created.get_json()["id"])
    return ids


def submit_round(client: FlaskClient, ids: list[str], headers: Headers) -> tuple[float, float]:
    """(requests per wall-clock second, requests per process-CPU second) over one round."""
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for referral_id in ids:
        response = client.post(f"/api/v1/referrals/{referral_id}/submit", json={}, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"submit failed: {response.status_code} {response.get_data()!r}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(ids) / wall, len(ids) / cpu


def check_round(runtime: Runtime, name: str, ids: list[str]) -> None:
    """A: exactly one referral.submitted row for norrmalm per submitted referral; B: none."""
    with runtime.database.sessions() as session:
        rows = session.execute(
            select(
                OutboxMessage.referral_id, OutboxMessage.unit_id, OutboxMessage.event_type
            ).where(OutboxMessage.referral_id.in_([uuid.UUID(i) for i in ids]))
        ).all()
    per_referral = {uuid.UUID(i): 0 for i in ids}
    for referral_id, unit_id, event_type in rows:
        if unit_id != RECEIVER or event_type != "referral.submitted":
            raise SystemExit(f"variant {name}: unexpected row {unit_id} {event_type}")
        per_referral[referral_id] += 1
    wrong = {k: v for k, v in per_referral.items() if v != EXPECTED_ROWS[name]}
    if wrong:
        raise SystemExit(
            f"variant {name}: {len(wrong)} of {len(ids)} submits wrote other than"
            f" {EXPECTED_ROWS[name]} outbox row(s): {sorted(set(wrong.values()))}"
        )


def outbox_rows(runtime: Runtime) -> int:
    with runtime.database.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def measure_submits(app: Flask, runtime: Runtime, headers: Headers) -> dict[str, list[Any]]:
    client = app.test_client()
    timings: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    order = [("A", "B")] + [("A", "B") if i % 2 == 0 else ("B", "A") for i in range(ROUNDS)]
    for index, pair in enumerate(order):
        for name in pair:
            ids = drafts(client, headers, PER_ROUND)
            with VARIANTS[name]():
                figures = submit_round(client, ids, headers)
            check_round(runtime, name, ids)
            if index > 0:  # the first pair warms caches and the connection pool
                timings[name].append(figures)
    return timings


# --- 2. worker delivery ------------------------------------------------------------------


def enqueue(runtime: Runtime, referral_ids: list[uuid.UUID], count: int) -> set[str]:
    """``count`` pending messages for norrmalm, in one transaction; their webhook-ids."""
    with runtime.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Referral).where(Referral.id.in_(referral_ids))))
        now = runtime.clock()
        for i in range(count):
            outbox.announce(uow, rows[i % len(rows)], "referral.submitted", [RECEIVER], now)
        uow.session.flush()
        pending = uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.state == outbox.DeliveryState.PENDING)
        ).all()
        ids = {outbox.webhook_id(m) for m in pending}
        uow.commit()
    if len(ids) != count:
        raise SystemExit(f"{len(ids)} pending messages, expected {count}")
    return ids


def drain(runtime: Runtime, workers: int) -> tuple[float, list[int], int]:
    """Run ``workers`` workers until each finds nothing to claim.

    (seconds, messages each worker delivered, the most any one round claimed)."""
    jobs = [Worker(runtime) for _ in range(workers)]
    start_line = threading.Barrier(workers + 1)
    delivered = [0] * workers
    largest = [0] * workers
    failures: list[BaseException] = []

    def work(index: int) -> None:
        start_line.wait()
        try:
            while (result := jobs[index].run_round()).claimed:
                delivered[index] += result.delivered
                largest[index] = max(largest[index], result.claimed)
        except BaseException as exc:  # reported below, in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    gc.collect()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for job in jobs:
        job.sender.close()
    if failures:
        raise SystemExit(f"a worker failed: {failures[0]!r}")
    return elapsed, delivered, max(largest)


def check_drain(
    runtime: Runtime, receiver: WebhookReceiver, secret: str, expected: set[str]
) -> None:
    """Every message delivered exactly once, signed, and settled after one attempt."""
    received = receiver.received
    seen = [r.headers.get("webhook-id") for r in received]
    if len(received) != len(expected) or set(seen) != expected:
        raise SystemExit(
            f"{len(received)} requests, {len(set(seen))} distinct webhook-ids,"
            f" {len(set(seen) & expected)} of the {len(expected)} expected"
        )
    for request in received:
        standard_webhooks.verify(secret, request.headers, request.body)
    message_ids = [uuid.UUID(hex=webhook_id.removeprefix("msg_")) for webhook_id in expected]
    with runtime.database.sessions() as session:
        states = session.execute(
            select(OutboxMessage.state, OutboxMessage.attempts, func.count())
            .where(OutboxMessage.id.in_(message_ids))
            .group_by(OutboxMessage.state, OutboxMessage.attempts)
        ).all()
        left = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.state == outbox.DeliveryState.PENDING)
        )
    if left:
        raise SystemExit(f"{left} messages still pending after the drain")
    if [tuple(row) for row in states] != [(outbox.DeliveryState.DELIVERED, 1, len(expected))]:
        raise SystemExit(f"messages not all delivered at the first attempt: {states}")


def set_webhook(client: FlaskClient, admin: Headers, url: str) -> str:
    return str(put_webhook(client, admin, RECEIVER, url)["webhook_secret"])


def measure_delivery(app: Flask, runtime: Runtime, admin: Headers) -> dict[int, list[float]]:
    # Part 1 left its messages for norrmalm pending while norrmalm had no webhook: one
    # worker settles them all as skipped, so the drains below start from an empty queue.
    settler = Worker(runtime)
    while settler.run_round().claimed:
        pass
    settler.sender.close()
    with runtime.database.sessions() as session:
        referral_ids = list(session.scalars(select(Referral.id).limit(50)))
    rates: dict[int, list[float]] = {1: [], 2: []}
    with WebhookReceiver() as receiver:
        secret = set_webhook(app.test_client(), admin, receiver.url())
        order = [1, 2] + [n for i in range(DRAINS) for n in ((1, 2) if i % 2 == 0 else (2, 1))]
        for index, workers in enumerate(order):
            count = MESSAGES if index > 1 else WARMUP_MESSAGES  # the first pair warms up
            expected = enqueue(runtime, referral_ids, count)
            seconds, sent, largest = drain(runtime, workers)
            if sum(sent) != count:
                raise SystemExit(f"workers report {sent} delivered, expected {count} in all")
            check_drain(runtime, receiver, secret, expected)
            receiver.clear()
            if index > 1:
                rate = MESSAGES / seconds
                rates[workers].append(rate)
                split = " + ".join(str(n) for n in sent)
                say(
                    f"  drain {index - 1}: {workers} worker(s) {rate:7.1f} msg/s, sent {split},"
                    f" largest round {largest} (batch size {runtime.delivery_policy().batch_size})"
                )
    return rates


# --- the run ------------------------------------------------------------------------------


@contextmanager
def application(url: str) -> Iterator[tuple[Flask, Runtime, Path]]:
    with tempfile.TemporaryDirectory(prefix="referrals-bench-") as directory:
        instance = Path(directory) / "instance"
        app = create_app(Settings(instance_path=instance, database_url=url, log_level="WARNING"))
        runtime: Runtime = app.extensions["referrals"]
        try:
            with runtime.unit_of_work() as uow:
                seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
            yield app, runtime, instance
        finally:
            runtime.database.dispose()


def bearer(instance: Path, role: Role, unit: str | None = None) -> Headers:
    key = devissuer.load_or_create_key(instance)
    token = devissuer.mint(key, role=role, unit=unit, audience="referrals-api")
    return {"Authorization": f"Bearer {token}"}


def load() -> str:
    return ", ".join(f"{figure:.2f}" for figure in os.getloadavg()) + " (1, 5, 15 min)"


def run_submits(app: Flask, runtime: Runtime, instance: Path) -> None:
    say(
        f"1. outbox on the request path: {ROUNDS} interleaved rounds per variant"
        f" x {PER_ROUND} POST /api/v1/referrals/{{id}}/submit, Flask test client"
    )
    sender = bearer(instance, Role.YOUTH_WORKER, "ungdomsjouren")
    timings = measure_submits(app, runtime, sender)
    # The warm-up A round and every A round; the B rounds wrote nothing.
    written, expected = outbox_rows(runtime), PER_ROUND * (1 + ROUNDS)
    if written != expected:
        raise SystemExit(f"{written} outbox rows written, expected {expected}")
    say(f"outbox rows written: {written} (one per submit in A, none in B: checked per round)")
    ab_report_clocks(
        timings, labels=LABELS, per="submits", ratio="with/without outbox", cost="outbox cost"
    )


def run_delivery(app: Flask, runtime: Runtime, instance: Path) -> None:
    say(
        f"2. worker delivery to a loopback receiver (200 at once): {MESSAGES} pending"
        f" messages per drain, {DRAINS} drains per worker count after a warm-up pair"
        f" of {WARMUP_MESSAGES}"
    )
    rates = measure_delivery(app, runtime, bearer(instance, Role.ADMIN))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    say("wall-clock, median over drains, messages/second (each delivered once: checked):")
    say(f"  1 worker            {one:8.1f}   ({', '.join(f'{r:.1f}' for r in rates[1])})")
    say(f"  2 workers (threads) {two:8.1f}   ({', '.join(f'{r:.1f}' for r in rates[2])})")
    say(f"  ratio 2 workers / 1 worker {two / one:.3f}")
    say(f"  per message: 1 worker {1e3 / one:.2f} ms, 2 workers {1e3 / two:.2f} ms")


def main() -> None:
    started = time.perf_counter()
    try:
        with postgres_database() as url, application(url) as (app, runtime, instance):
            with runtime.database.engine.connect() as connection:
                server = connection.execute(text("SHOW server_version")).scalar_one()
            say(
                f"webhooks benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
                f" PostgreSQL {server} (throw-away database)"
            )
            say(f"load average at the start (other work on the machine): {load()}")
            say()
            run_submits(app, runtime, instance)
            say()
            run_delivery(app, runtime, instance)
    except pytest.skip.Exception as exc:
        raise SystemExit(f"no PostgreSQL: {exc}") from None
    say()
    say(f"load average at the end: {load()}")
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
