"""What the operator's dashboard reads from the database, in one read-only transaction.

Called when Prometheus scrapes (``referrals.metrics.database``), never per request.  Each
query is an indexed lookup or a GROUP BY over a small set: outbox messages waiting, dead
or skipped (not the delivered ones, the bulk of the table), overdue referrals found through
``ix_referrals_status_due``, and unsealed audit events are counted only back to the
newest sealed one's time less the late-commit window, as the freshness check does.
Nothing returned names a person or a referral: counts by code and unit slug, and times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referrals.audit import sealing
from referrals.audit.sealing import Backlog
from referrals.db.engine import Database
from referrals.db.models import AuditEvent, AuditSeal, OutboxMessage, Referral
from referrals.domain.codes import Priority, Status
from referrals.domain.retention import RetentionPolicy
from referrals.services import retention as retention_service
from referrals.services.outbox import DeliveryState


@dataclass(frozen=True)
class Snapshot:
    backlog: Backlog
    # Committed audit events without a seal yet.
    pending_events: int
    # (state, unit) -> messages
    outbox: dict[tuple[str, str], int]
    oldest_outbox_pending: datetime | None
    # priority -> referrals awaiting a decision past their due time
    overdue: dict[str, int]
    # Referrals whose retention period has ended (not held), and active legal holds.
    retention: retention_service.Backlog


def snapshot(database: Database, now: datetime, periods: RetentionPolicy) -> Snapshot:
    """Raises ``SQLAlchemyError`` when the database does not answer."""
    with database.read_session() as session:
        return Snapshot(
            backlog=sealing.backlog(session),
            pending_events=pending_events(session),
            outbox=outbox_counts(session),
            oldest_outbox_pending=session.scalar(
                select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.state == DeliveryState.PENDING.value
                )
            ),
            overdue=overdue_counts(session, now),
            retention=retention_service.backlog(session, periods, now),
        )


def pending_events(session: Session) -> int:
    newest_sealed = session.scalar(
        select(AuditEvent.recorded_at)
        .join(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .order_by(AuditSeal.seq.desc())
        .limit(1)
    )
    query = (
        select(func.count())
        .select_from(AuditEvent)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
    )
    if newest_sealed is not None:
        query = query.where(AuditEvent.recorded_at >= newest_sealed - sealing.LATE_COMMIT_WINDOW)
    return session.scalar(query) or 0


# Delivered messages are the bulk of the table (kept for the retention period) and their
# rate is the worker's counter; the states an operator acts on are few rows, found through
# ix_outbox_due (state, next_attempt_at).
COUNTED_STATES = (
    DeliveryState.PENDING.value,
    DeliveryState.DEAD.value,
    DeliveryState.SKIPPED.value,
)


def outbox_counts(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(OutboxMessage.state, OutboxMessage.unit_id, func.count())
        .where(OutboxMessage.state.in_(COUNTED_STATES))
        .group_by(OutboxMessage.state, OutboxMessage.unit_id)
    )
    return {(state, unit): count for state, unit, count in rows}


def overdue_counts(session: Session, now: datetime) -> dict[str, int]:
    """As ``GET /referrals?overdue=true`` counts them: requested, past ``due_at``."""
    rows = session.execute(
        select(Referral.priority, func.count())
        .where(
            Referral.status == Status.REQUESTED.value,
            Referral.due_at.is_not(None),
            Referral.due_at < now,
        )
        .group_by(Referral.priority)
    )
    counts = {priority.value: 0 for priority in Priority}
    counts.update({priority: count for priority, count in rows})
    return counts
