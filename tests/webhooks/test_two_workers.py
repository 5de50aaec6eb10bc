"""Two workers, one outbox, 1,000 messages: each is sent exactly once.

PostgreSQL, real processes.  Two ``referrals worker`` processes share a throw-away database
and deliver to one loopback receiver that always answers 200.  The messages are 40 real
submissions plus 960 more written by the outbox's own ``announce`` in one transaction once
both workers are connected, so the two compete for the same rows from the first moment.
With every answer a success there is no reason to send anything twice: the receiver must
get exactly 1,000 requests with 1,000 distinct ``webhook-id``s, and both workers must have
taken part (their split, from their ``worker round`` log lines, is printed with ``-s``).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from referrals.auth.principal import Role
from referrals.db.models import Referral
from referrals.services.outbox import announce
from tests.api.helpers import NORRMALM, REFERRALS, referral_body
from tests.support.standard_webhooks import verify
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import WebhookReceiver
from tests.webhooks.conftest import Deployment

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

MESSAGES = 1000
SUBMITTED = 40
WORKERS = ("worker-a", "worker-b")
BATCH = 20
WORKER_SETTINGS = {"worker_batch_size": str(BATCH), "worker_interval": "0.1"}
EVENTS = ("referral.accepted", "referral.started", "referral.held", "referral.resumed")


def rounds_of(deployment: Deployment, name: str) -> list[dict[str, Any]]:
    """The worker's ``worker round`` log lines (one per round that claimed something)."""
    rounds = []
    for line in deployment.log(name).read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "worker round":
                rounds.append(entry)
    return rounds


def connected(deployment: Deployment) -> set[str]:
    rows = deployment.rows(
        "SELECT DISTINCT application_name FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = ANY(:names)",
        names=list(WORKERS),
    )
    return {row[0] for row in rows}


def test_two_workers_deliver_a_thousand_messages_exactly_once(deployment: Deployment) -> None:
    started = time.monotonic()
    client = deployment.app.test_client()
    admin = deployment.bearer(Role.ADMIN)
    youth_worker = deployment.bearer(Role.YOUTH_WORKER, "ungdomsjouren")
    with WebhookReceiver() as receiver:
        secret = put_webhook(client, admin, NORRMALM, receiver.url())["webhook_secret"]
        referral_ids = []
        for _ in range(SUBMITTED):
            created = client.post(REFERRALS, json=referral_body(submit=True), headers=youth_worker)
            assert created.status_code == 201, created.get_json()
            referral_ids.append(uuid.UUID(created.get_json()["id"]))

        for name in WORKERS:
            deployment.start_worker(name, **WORKER_SETTINGS)
        deployment.wait_until(
            "both workers connected", lambda: connected(deployment) == set(WORKERS), timeout=30
        )
        both_up = time.monotonic()

        runtime = deployment.runtime
        with runtime.unit_of_work() as uow:
            rows = [uow.referrals.get(rid) for rid in referral_ids]
            now = runtime.clock()
            for n in range(MESSAGES - SUBMITTED):
                row = rows[n % SUBMITTED]
                assert isinstance(row, Referral)
                announce(uow, row, EVENTS[n % len(EVENTS)], [NORRMALM], now)
            uow.commit()
        written = time.monotonic()

        deployment.wait_until(
            f"{MESSAGES} messages delivered",
            lambda: (
                deployment.scalar("SELECT count(*) FROM outbox WHERE state = 'delivered'")
                == MESSAGES
            ),
            timeout=60,
        )
        delivered_at = time.monotonic()
        for name in WORKERS:
            assert deployment.stop(name) == 0, f"{name} did not stop cleanly"
        received = receiver.received

    assert deployment.scalar("SELECT count(*) FROM outbox") == MESSAGES
    ids = Counter(request.headers["webhook-id"] for request in received)
    duplicated = {msg: n for msg, n in ids.items() if n > 1}
    assert duplicated == {}, f"{len(duplicated)} messages sent more than once"
    assert len(received) == MESSAGES
    outbox_ids = {f"msg_{row[0].hex}" for row in deployment.rows("SELECT id FROM outbox")}
    assert set(ids) == outbox_ids
    # Each claim counts an attempt: no message was ever claimed by both workers.
    assert dict(deployment.rows("SELECT attempts, count(*) FROM outbox GROUP BY attempts")) == {
        1: MESSAGES
    }
    for request in received:
        verify(secret, request.headers, request.body)

    rounds = {name: rounds_of(deployment, name) for name in WORKERS}
    split = {name: sum(r["delivered"] for r in rounds[name]) for name in WORKERS}
    largest = {name: max((r["claimed"] for r in rounds[name]), default=0) for name in WORKERS}
    assert sum(split.values()) == MESSAGES, split
    # A round claims at most one batch, so the other worker always finds work left: both
    # share the load (an even split is expected; a fifth each is a safe floor).
    assert all(n <= BATCH for n in largest.values()), f"claimed more than a batch: {largest}"
    assert min(split.values()) >= MESSAGES // 5, f"the load was not shared: {split}"

    sys.stdout.write(
        f"\ntwo workers: {MESSAGES} messages, {len(received)} requests, "
        f"{len(ids)} distinct webhook-ids, split {split}, largest claim {largest}\n"
        f"  delivered {delivered_at - written:.1f} s after the bulk write "
        f"({MESSAGES / (delivered_at - both_up):.0f} messages/s from both workers up)\n"
        f"  setup {both_up - started:.1f} s, whole test {time.monotonic() - started:.1f} s\n"
    )
