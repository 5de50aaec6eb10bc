"""A worker killed mid-batch loses nothing: its claims lapse and a new worker sends them.

PostgreSQL, real processes: the CLI migrates and seeds a throw-away database, the test
points norrmalm's webhook at a loopback receiver that takes 0.2 s per answer, submits 40
referrals, and starts ``referrals worker`` (batches of 10, a 3 s lease).  Once the second
batch is half sent the worker gets SIGKILL, with no chance to settle anything; a new worker
then delivers everything.  At-least-once: every message arrives, and the only one that may
arrive twice is the one in flight when the process died.

Timings are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter

import pytest

from referrals.auth.principal import Role
from tests.api.helpers import NORRMALM, REFERRALS, referral_body
from tests.support.standard_webhooks import verify
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import Slow, WebhookReceiver
from tests.webhooks.conftest import Deployment

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

MESSAGES = 40
BATCH = 10
ANSWER_SECONDS = 0.2
LEASE = "3"
KILL_AFTER = BATCH + BATCH // 2  # half way through the second batch

WORKER_SETTINGS = {
    "worker_batch_size": str(BATCH),
    "worker_lease": LEASE,
    "webhook_timeout": "2",
    "worker_interval": "0.2",
}


def outbox_states(deployment: Deployment) -> Counter[str]:
    return Counter(dict(deployment.rows("SELECT state, count(*) FROM outbox GROUP BY state")))


def test_a_worker_killed_mid_batch_loses_no_message(deployment: Deployment) -> None:
    started = time.monotonic()
    client = deployment.app.test_client()
    admin = deployment.bearer(Role.ADMIN)
    youth_worker = deployment.bearer(Role.YOUTH_WORKER, "ungdomsjouren")
    with WebhookReceiver() as receiver:
        receiver.respond_with(*[Slow(ANSWER_SECONDS)] * (MESSAGES * 2))
        secret = put_webhook(client, admin, NORRMALM, receiver.url())["webhook_secret"]
        for _ in range(MESSAGES):
            created = client.post(REFERRALS, json=referral_body(submit=True), headers=youth_worker)
            assert created.status_code == 201, created.get_json()
        outbox_ids = {f"msg_{row[0].hex}" for row in deployment.rows("SELECT id FROM outbox")}
        assert len(outbox_ids) == MESSAGES
        setup_done = time.monotonic()

        first = deployment.start_worker("worker-1", **WORKER_SETTINGS)
        receiver.wait_for(KILL_AFTER, timeout=30)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        assert first.returncode == -signal.SIGKILL

        # Caught mid-batch: some delivered, some claimed by the dead worker and unsettled.
        at_kill = outbox_states(deployment)
        orphaned = {
            f"msg_{row[0].hex}"
            for row in deployment.rows(
                "SELECT id FROM outbox WHERE state = 'pending' AND claim_token IS NOT NULL"
            )
        }
        sent_before_kill = {r.headers["webhook-id"] for r in receiver.received}
        assert 0 < at_kill["delivered"] < MESSAGES, at_kill
        assert at_kill["pending"] == MESSAGES - at_kill["delivered"]
        assert 0 < len(orphaned) <= BATCH, orphaned

        deployment.start_worker("worker-2", **WORKER_SETTINGS)
        deployment.wait_until(
            "every message delivered",
            lambda: outbox_states(deployment) == Counter(delivered=MESSAGES),
            timeout=60,
        )
        finished = time.monotonic()
        received = receiver.received

    ids = Counter(r.headers["webhook-id"] for r in received)
    assert set(ids) == outbox_ids
    duplicated = {msg for msg, n in ids.items() if n > 1}
    # Only a message the dead worker had claimed and not settled may come twice, and only
    # the one it was sending at the time: a worker sends one message at a time.
    assert duplicated <= orphaned & sent_before_kill, (duplicated, orphaned)
    assert len(duplicated) <= 1
    assert max(ids.values()) <= 2
    # Each claim counts an attempt: the orphaned messages were claimed twice, no other.
    attempts = {
        f"msg_{row[0].hex}": row[1] for row in deployment.rows("SELECT id, attempts FROM outbox")
    }
    assert {msg for msg, n in attempts.items() if n != 1} == orphaned
    assert {attempts[msg] for msg in orphaned} == {2}
    for request in received:
        verify(secret, request.headers, request.body)

    sys.stdout.write(
        f"\ncrash safety: {MESSAGES} messages, batch {BATCH}, lease {LEASE} s, "
        f"{ANSWER_SECONDS} s per answer\n"
        f"  killed after {len(sent_before_kill)} requests ({at_kill['delivered']} settled, "
        f"{len(orphaned)} claimed and orphaned)\n"
        f"  second worker delivered the rest in {finished - killed_at:.1f} s; "
        f"{len(received)} requests for {MESSAGES} messages, duplicated: {len(duplicated)}\n"
        f"  setup {setup_done - started:.1f} s, whole test {time.monotonic() - started:.1f} s\n"
    )
