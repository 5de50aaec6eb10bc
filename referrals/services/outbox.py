"""The transactional outbox: what to tell which unit's system, written with the change.

``announce`` adds the messages in the caller's transaction: if the change rolls back, so
do they, and nothing is ever sent about a change that did not happen.  The worker
(referrals/services/delivery.py) sends them afterwards, at least once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from referrals.auth import policy
from referrals.db.models import OutboxMessage, Referral
from referrals.domain.codes import Action
from referrals.services import cursors
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound
from referrals.services.uow import UnitOfWork


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Every attempt failed: kept for an administrator to look at and replay.
    DEAD = "dead"
    # The unit had no enabled webhook endpoint when the worker got to it.
    SKIPPED = "skipped"


REPLAYABLE = (DeliveryState.DEAD, DeliveryState.SKIPPED)

EVENT_OF_ACTION = {
    Action.SUBMIT: "referral.submitted",
    Action.ACCEPT: "referral.accepted",
    Action.DECLINE: "referral.declined",
    Action.REDIRECT: "referral.redirected",
    Action.CANCEL: "referral.cancelled",
    Action.START: "referral.started",
    Action.HOLD: "referral.held",
    Action.RESUME: "referral.resumed",
    Action.COMPLETE: "referral.completed",
    Action.FAIL: "referral.failed",
    Action.MARK_ERROR: "referral.entered_in_error",
}
OVERDUE = "referral.overdue"
UNANSWERED = "referral.unanswered"
# The sender recorded that the consent the referral rests on was withdrawn.
CONSENT_WITHDRAWN = "referral.consent_withdrawn"
EVENT_TYPES = (*EVENT_OF_ACTION.values(), OVERDUE, UNANSWERED, CONSENT_WITHDRAWN)


def announce_transition(uow: UnitOfWork, ctx: Context, row: Referral, action: Action) -> None:
    """Tell the units on the referral, other than the one acting, that it changed.

    Both ends stay informed: the receiving unit learns of a new or cancelled referral,
    the sending unit of every decision and outcome (the closed loop).  After a redirect,
    "receiving" is already the new unit; the previous one has lost access."""
    recipients = {row.sending_unit_id, row.receiving_unit_id} - {ctx.principal.unit}
    announce(uow, row, EVENT_OF_ACTION[action], recipients, ctx.now)


def announce(
    uow: UnitOfWork,
    row: Referral,
    event_type: str,
    recipients: Iterable[str | None],
    now: datetime,
) -> None:
    payload = json.dumps(
        {
            "type": event_type,
            "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            # Ids and codes only: receivers fetch anything else through the API, as
            # themselves, audited.
            "data": {"referral_id": str(row.id), "status": row.status},
        },
        separators=(",", ":"),
    )
    for unit_id in sorted(u for u in set(recipients) if u is not None):
        uow.outbox.add(
            OutboxMessage(
                id=uuid.uuid4(),
                created_at=now,
                event_type=event_type,
                referral_id=row.id,
                unit_id=unit_id,
                payload=payload,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
            )
        )


def webhook_id(message: OutboxMessage) -> str:
    return f"msg_{message.id.hex}"


def represent(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "webhook_id": webhook_id(message),
        "event_type": message.event_type,
        "referral_id": message.referral_id,
        "unit": message.unit_id,
        "state": message.state,
        "attempts": message.attempts,
        "created_at": message.created_at,
        "next_attempt_at": message.next_attempt_at,
        "last_attempt_at": message.last_attempt_at,
        "last_error": message.last_error,
        "delivered_at": message.delivered_at,
    }


def list_page(
    uow: UnitOfWork,
    ctx: Context,
    *,
    state: DeliveryState | None,
    unit: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    _require(policy.may_manage_routing(ctx.principal))
    rows = uow.outbox.page(state=state, unit=unit, limit=limit + 1, after=cursors.decode(cursor))
    items = [represent(m) for m in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    uow.commit()
    return items, cursors.encode(last.created_at, last.id) if last else None


def replay(uow: UnitOfWork, ctx: Context, message_id: uuid.UUID) -> dict[str, Any]:
    """Send a dead (or skipped) message again, as the same message: receivers that got
    it after all deduplicate on its unchanged ``webhook-id``."""
    _require(policy.may_manage_routing(ctx.principal))
    message = uow.outbox.get(message_id)
    if message is None:
        raise NotFound("no such delivery")
    if message.state not in REPLAYABLE:
        raise Conflict(f"only dead or skipped deliveries are replayed, not {message.state}")
    message.state = DeliveryState.PENDING
    message.attempts = 0
    message.next_attempt_at = ctx.now
    message.last_error = None
    uow.commit()
    return represent(message)


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden("this role may not do this")


def prune(
    uows: Callable[[], UnitOfWork], clock: Callable[[], datetime], retention_days: int
) -> int:
    """Forget delivered and skipped messages older than the retention, a bounded batch
    per call so the worker never holds a long delete."""
    with uows() as uow:
        removed = uow.outbox.prune(clock() - timedelta(days=retention_days), limit=500)
        uow.commit()
    return removed
