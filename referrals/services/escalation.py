"""Deadlines that passed without a decision: tell the receiving unit the referral is
overdue, and escalate to the sending unit that it is unanswered, once per deadline and
receiving unit (a unit an overdue referral is redirected to is told as well)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from referrals.db.models import DeadlineNotice
from referrals.services.outbox import OVERDUE, UNANSWERED, announce
from referrals.services.uow import UnitOfWork


def escalate_overdue(
    uows: Callable[[], UnitOfWork], clock: Callable[[], datetime], limit: int = 100
) -> int:
    """Escalate up to ``limit`` overdue referrals; returns how many this call escalated."""
    now = clock()
    with uows() as uow:
        candidates = [row.id for row in uow.outbox.overdue_without_notice(now, limit)]
    return sum(_escalate(uows, referral_id, now) for referral_id in candidates)


def _escalate(uows: Callable[[], UnitOfWork], referral_id: uuid.UUID, now: datetime) -> bool:
    # One transaction per referral: the notice and its two messages commit together, and a
    # worker that loses the race for one referral (the notice's primary key) skips only it.
    with uows() as uow:
        row = uow.referrals.get(referral_id)
        if (
            row is None
            or row.status != "requested"
            or row.due_at is None
            or row.due_at >= now
            or row.receiving_unit_id is None
        ):
            return False  # decided since the candidates were read
        uow.outbox.add_notice(
            DeadlineNotice(
                referral_id=row.id, due_at=row.due_at, unit_id=row.receiving_unit_id, created_at=now
            )
        )
        try:
            uow.session.flush()
        except IntegrityError:
            return False
        announce(uow, row, OVERDUE, [row.receiving_unit_id], now)
        announce(uow, row, UNANSWERED, [row.sending_unit_id], now)
        try:
            uow.commit()
        except IntegrityError:
            return False
    return True
