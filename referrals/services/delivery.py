"""The webhook worker's job: claim due outbox messages, send them, record the result.

At least once, never silently lost:
- A claim is a guarded UPDATE that sets a lease (``locked_until``) and a claim token, in a
  transaction of its own; on PostgreSQL the candidates are picked ``FOR UPDATE SKIP
  LOCKED`` so several workers take different messages.
- Nothing is held open while sending: a worker that dies mid-batch (SIGKILL) leaves its
  messages claimed until the lease runs out, then any worker sends them again.
- A result is written only under the claim token, so a worker whose lease ran out cannot
  overwrite the result of the worker that took the message over.
- A message fails alone: whatever goes wrong with one (a malformed endpoint planted in
  the database, a secret that does not open, an exception anywhere in its attempt) is a
  failed attempt of that message, counted towards its dead-letter maximum, and the rest
  of the batch is still sent.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from referrals.crypto.aead import DecryptionError
from referrals.db.models import Unit
from referrals.services.outbox import DeliveryState, webhook_id
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Vault, webhook_secret_context
from referrals.webhooks import signing
from referrals.webhooks.destinations import REFUSED
from referrals.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)

FAILED = "delivery failed"

UnitsOfWork = Callable[[], UnitOfWork]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 5.0
    max_attempts: int = 8
    # Exponential backoff: base, 2 x base, 4 x base ... up to cap, with jitter.
    backoff_base: float = 30.0
    backoff_cap: float = 6 * 3600.0
    batch_size: int = 20
    # How long a claim lasts; None: long enough for a whole batch to time out.
    lease: float | None = None
    jitter: Callable[[], float] = field(default=random.random, repr=False)
    # Production: the admin listing says only "refused destination" or "delivery failed".
    # A status code, "tls failed" or "timeout" would tell an admin token what listens
    # behind an endpoint; the worker's log keeps the detail for the operator.
    coarse_errors: bool = False

    def shown(self, error: str) -> str:
        """The error as stored for ``GET /admin/deliveries``."""
        if not self.coarse_errors or error == REFUSED:
            return error
        return FAILED

    @property
    def lease_time(self) -> timedelta:
        if self.lease is not None:
            return timedelta(seconds=self.lease)
        return timedelta(seconds=self.batch_size * (self.timeout + 1) + 30)

    @property
    def attempt_lease(self) -> timedelta:
        """Renewed just before each send: one attempt (bounded by the timeout) and slack,
        the slack no longer than the configured lease, so a killed worker's message in
        flight comes back as soon as the rest of its batch."""
        return timedelta(seconds=self.timeout) + min(self.lease_time, timedelta(seconds=30))

    def retry_delay(self, attempts: int) -> timedelta:
        """After the ``attempts``-th failure.  "Equal jitter": half fixed, half random,
        so retries neither stampede a receiver that is back nor come back at once."""
        # The exponent is bounded: 2**1024 does not fit a float, and 2**62 x base is far
        # beyond any cap anyway.
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 62))
        return timedelta(seconds=delay / 2 + self.jitter() * delay / 2)


@dataclass(frozen=True)
class Claimed:
    message_id: uuid.UUID
    webhook_id: str
    payload: str
    attempts: int
    url: str | None
    # Kept out of reprs: an error reporter that captures locals must not record it.
    secret: str | None = field(repr=False)
    # Set when what sending needs could not be read: the attempt fails without sending.
    broken: bool = False
    # When the change it announces was made: delivery latency is measured from here.
    created_at: datetime | None = None


@dataclass
class Round:
    escalated: int = 0
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    pruned: int = 0
    # Referrals crypto-shredded because their retention period ended.
    erased: int = 0
    # Seconds from each delivered message's change to its delivery (for the metrics).
    latencies: list[float] = field(default_factory=list)


def claim(
    uows: UnitsOfWork, clock: Clock, policy: DeliveryPolicy
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    token = uuid.uuid4()
    with uows() as uow:
        now = clock()
        claimed = list(uow.outbox.claim_due(now, now + policy.lease_time, token, policy.batch_size))
        uow.commit()
    return token, claimed


def load(uows: UnitsOfWork, vault: Vault, ids: list[uuid.UUID]) -> list[Claimed]:
    """What sending needs, read in one short transaction closed before any HTTP."""
    out = []
    with uows() as uow:
        for message_id in ids:
            message = uow.outbox.get(message_id)
            if message is None:
                continue
            ident = (message.id, webhook_id(message), message.payload, message.attempts)
            try:
                url, secret = _endpoint(vault, uow.units.get(message.unit_id))
            except Exception:
                log.exception("webhook endpoint unreadable", extra={"delivery": str(message.id)})
                out.append(Claimed(*ident, None, None, broken=True, created_at=message.created_at))
                continue
            out.append(Claimed(*ident, url, secret, created_at=message.created_at))
    return out


def deliver_round(
    uows: UnitsOfWork,
    vault: Vault,
    sender: WebhookSender,
    clock: Clock,
    policy: DeliveryPolicy,
    stopping: Callable[[], bool] = lambda: False,
) -> Round:
    """Claim a batch and send it; when ``stopping`` turns true (SIGTERM), the rest of the
    batch is left to come back after its lease rather than hold up the shutdown."""
    token, ids = claim(uows, clock, policy)
    result = Round(claimed=len(ids))
    for item in load(uows, vault, ids):
        if stopping():
            break
        state = _attempt(uows, sender, clock, policy, token, item)
        if state is None:
            continue  # the claim was lost to another worker: its result counts there
        if state is DeliveryState.DELIVERED:
            result.delivered += 1
            if item.created_at is not None:
                result.latencies.append(max(0.0, (clock() - item.created_at).total_seconds()))
        elif state is DeliveryState.DEAD:
            result.dead += 1
        elif state is DeliveryState.SKIPPED:
            result.skipped += 1
        else:
            result.failed += 1
    return result


def _attempt(
    uows: UnitsOfWork,
    sender: WebhookSender,
    clock: Clock,
    policy: DeliveryPolicy,
    token: uuid.UUID,
    item: Claimed,
) -> DeliveryState | None:
    """One message's attempt, whatever happens in it; None when its result is not ours to
    write (the claim was lost, or the failure could not even be recorded: then the lease
    brings the message back, its attempt already counted by the claim)."""
    try:
        return _send(uows, sender, clock, policy, token, item)
    except Exception:
        log.exception("webhook attempt failed", extra={"delivery": str(item.message_id)})
    try:
        return _failed(uows, clock, policy, token, item, FAILED)
    except Exception:
        log.exception("webhook failure not recorded", extra={"delivery": str(item.message_id)})
        return None


def _send(
    uows: UnitsOfWork,
    sender: WebhookSender,
    clock: Clock,
    policy: DeliveryPolicy,
    token: uuid.UUID,
    item: Claimed,
) -> DeliveryState | None:
    """One attempt; the state it left the message in, or None when the claim was lost."""
    if item.broken:
        return _failed(uows, clock, policy, token, item, FAILED)
    if item.url is None or item.secret is None:
        return _settle(
            uows, token, item, DeliveryState.SKIPPED, error="no enabled webhook endpoint"
        )
    # Still ours?  A worker whose lease ran out while it sent earlier messages of the batch
    # must not send this one again after another worker has taken it over.
    with uows() as uow:
        now = clock()
        renewed = uow.outbox.renew(item.message_id, token, now, now + policy.attempt_lease)
        uow.commit()
    if not renewed:
        return None
    body = item.payload.encode()
    timestamp = int(clock().timestamp())
    error = sender.post(
        item.url, body, signing.headers(item.secret, item.webhook_id, timestamp, body)
    )
    if error is None:
        return _settle(uows, token, item, DeliveryState.DELIVERED, delivered_at=clock())
    if error != policy.shown(error):
        # The detail stays with the operator's log.
        detail = {"delivery": str(item.message_id), "reason": error}
        log.info("webhook attempt failed", extra=detail)
    return _failed(uows, clock, policy, token, item, policy.shown(error))


def _failed(
    uows: UnitsOfWork,
    clock: Clock,
    policy: DeliveryPolicy,
    token: uuid.UUID,
    item: Claimed,
    error: str,
) -> DeliveryState | None:
    """A failed attempt: retried later with backoff, or dead at the maximum."""
    if item.attempts >= policy.max_attempts:
        log.warning("webhook dead-lettered", extra={"delivery": str(item.message_id)})
        return _settle(uows, token, item, DeliveryState.DEAD, error=error)
    retry_at = clock() + policy.retry_delay(item.attempts)
    return _settle(uows, token, item, DeliveryState.PENDING, error=error, next_attempt_at=retry_at)


def _settle(
    uows: UnitsOfWork,
    token: uuid.UUID,
    item: Claimed,
    state: DeliveryState,
    *,
    error: str | None = None,
    **values: datetime,
) -> DeliveryState | None:
    with uows() as uow:
        settled = uow.outbox.settle(item.message_id, token, state=state, last_error=error, **values)
        uow.commit()
    if not settled:
        # Our lease ran out and another worker took the message: its result stands.
        log.warning("webhook claim lost", extra={"delivery": str(item.message_id)})
        return None
    return state


def _endpoint(vault: Vault, unit: Unit | None) -> tuple[str | None, str | None]:
    if unit is None or not unit.webhook_enabled or not unit.webhook_url:
        return None, None
    if unit.webhook_secret is None:
        return None, None
    try:
        secret = vault.open_secret(webhook_secret_context(unit.id), unit.webhook_secret)
    except DecryptionError:
        log.error("webhook secret failed its integrity check", extra={"unit": unit.id})
        return None, None
    return unit.webhook_url, secret
