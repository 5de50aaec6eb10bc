"""Retention (gallring) and legal holds.

A closed referral is kept for the period its final status has (``RetentionPolicy``,
from the ``REFERRALS_RETENTION_*`` settings), counted from the moment it reached that
status; a draft never submitted, from its last change.  Then the worker crypto-shreds it
through the one erase path (``services.referrals.erase``), one transaction and one audit
event (``referral:erase``, reason ``retention_expired``) per referral.  A legal hold stops
that, and every other erasure, until it is released.

Everything here speaks in ids, statuses, codes and dates: no personal data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from referrals.audit.actions import AuditAction
from referrals.audit.recorder import PendingAudit
from referrals.auth import policy
from referrals.auth.principal import Principal, Role
from referrals.db import legal_holds
from referrals.db.models import LegalHold, Referral, TimelineEvent
from referrals.domain.codes import EraseReason, LegalHoldReason
from referrals.domain.retention import RETAINED_STATUSES, RetentionPolicy
from referrals.services import referrals as referral_cases
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound
from referrals.services.uow import UnitOfWork

log = logging.getLogger(__name__)
View = dict[str, Any]

# Who erases on retention's behalf: the worker, recorded as such in the audit trail and
# on the timeline (an operator's identity, like a command-line job's).
WORKER_ISSUER = "urn:referrals:worker"
RETENTION_WORKER = Principal(
    issuer=WORKER_ISSUER, subject="retention", roles=frozenset({Role.ADMIN})
)
# The report lists at most this many referrals of each kind (the counts are whole).
REPORT_LIMIT = 1000


# --- when is a referral due ---------------------------------------------------------------


def _clock_start() -> Any:
    """When the referral's retention clock started: the first timeline event that brought
    it to its present (final) status, or, for a draft, its last change.

    A final status is never left, so that event is the transition into it."""
    entered = (
        select(func.min(TimelineEvent.at))
        .where(
            TimelineEvent.referral_id == Referral.id,
            TimelineEvent.to_status == Referral.status,
        )
        .correlate(Referral)
        .scalar_subquery()
    )
    return func.coalesce(entered, Referral.updated_at).label("since")


def _due_by(periods: RetentionPolicy, moment: datetime, since: Any) -> Any:
    """Referrals (not erased) whose retention period has ended by ``moment``."""
    return and_(
        Referral.erased_at.is_(None),
        or_(
            *(
                and_(Referral.status == status.value, since <= cutoff)
                for status, cutoff in periods.cutoffs(moment).items()
            )
        ),
    )


def _due_query(periods: RetentionPolicy, moment: datetime) -> Select[Any]:
    since = _clock_start()
    return (
        select(Referral.id, Referral.status, Referral.outcome_code, since)
        .where(Referral.status.in_([s.value for s in RETAINED_STATUSES]))
        .where(_due_by(periods, moment, since))
    )


@dataclass(frozen=True)
class Due:
    referral_id: uuid.UUID
    status: str
    outcome_code: str | None
    since: datetime
    due_at: datetime


def _due(row: Row[Any], periods: RetentionPolicy) -> Due:
    due_at = periods.due_at(row.status, row.since)
    assert due_at is not None  # only retained statuses are selected
    return Due(row.id, row.status, row.outcome_code, row.since, due_at)


def due_within(
    session: Session, periods: RetentionPolicy, now: datetime, days: int, *, held: bool = False
) -> list[Due]:
    """Referrals whose period ends before ``now + days`` (those already past it
    included), held ones excluded unless ``held``; soonest first."""
    query = _due_query(periods, now + timedelta(days=days))
    if not held:
        query = query.where(~legal_holds.is_held())
    rows = session.execute(query).all()
    return sorted((_due(r, periods) for r in rows), key=lambda d: (d.due_at, d.referral_id))


# --- the worker: erase what is due -----------------------------------------------------------


UnitsOfWork = Callable[[PendingAudit | None], UnitOfWork]
Contexts = Callable[[Principal], Context]


def erase_expired(
    uows: UnitsOfWork,
    contexts: Contexts,
    clock: Callable[[], datetime],
    periods: RetentionPolicy,
    limit: int,
) -> int:
    """Erase up to ``limit`` referrals past their retention period; how many were erased.

    One transaction per referral, each with its own audit event: a failure (a hold placed
    a moment ago, a concurrent erasure, the audit trail away) costs that referral alone,
    which stays for the next round."""
    now = clock()
    with uows(None) as uow:
        query = (
            _due_query(periods, now)
            .where(~legal_holds.is_held())
            .order_by("since", Referral.id)
            .limit(limit)
        )
        candidates = [row.id for row in uow.session.execute(query)]
    return sum(_erase_one(uows, contexts, periods, referral_id) for referral_id in candidates)


def _worker_event() -> PendingAudit:
    return PendingAudit(
        action=AuditAction.REFERRAL_ERASE,
        request_id=f"worker-{uuid.uuid4().hex}",
        success_status=200,
        actor=RETENTION_WORKER,
        reason=EraseReason.RETENTION_EXPIRED.value,
    )


def _erase_one(
    uows: UnitsOfWork, contexts: Contexts, periods: RetentionPolicy, referral_id: uuid.UUID
) -> bool:
    pending = _worker_event()
    pending.target("referral", referral_id)
    ctx = contexts(RETENTION_WORKER)
    try:
        with uows(pending) as uow:
            # Still due now, under the lock erase takes?  A hold placed since the
            # candidates were read makes erase refuse (Conflict) instead.
            uow.referrals.get(referral_id, for_update=True)
            still_due = uow.session.execute(
                _due_query(periods, ctx.now).where(Referral.id == referral_id)
            ).first()
            if still_due is None:
                return False
            referral_cases.erase(uow, ctx, referral_id, EraseReason.RETENTION_EXPIRED)
    except Conflict:
        return False
    except Exception:
        # Logged by class only: never a value of the referral.
        log.exception("retention erasure failed", extra={"referral": str(referral_id)})
        return False
    return True


# --- legal holds ---------------------------------------------------------------------------


def place_hold(
    uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID, reason: LegalHoldReason
) -> View:
    """Hold the referral (a PUT: a hold with another reason replaces the active one, which
    is released; the same reason again changes nothing)."""
    if not policy.may_place_legal_hold(ctx.principal):
        raise Forbidden("only auditors and privacy officers place legal holds")
    row = _held_referral(uow, referral_id)
    if row.erased_at is not None:
        raise Conflict("the referral is already erased: there is nothing left to hold", field="id")
    hold = legal_holds.active(uow.session, referral_id)
    if hold is not None and hold.reason_code != reason:
        _release(hold, ctx)
        hold = None
    if hold is None:
        hold = LegalHold(
            id=uuid.uuid4(),
            referral_id=referral_id,
            reason_code=reason.value,
            placed_by=ctx.principal.actor,
            placed_at=ctx.now,
        )
        uow.session.add(hold)
    uow.commit()
    return represent_hold(hold, row)


def release_hold(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> None:
    if not policy.may_place_legal_hold(ctx.principal):
        raise Forbidden("only auditors and privacy officers release legal holds")
    _held_referral(uow, referral_id)
    hold = legal_holds.active(uow.session, referral_id)
    if hold is None:
        raise Conflict("the referral is not under a legal hold", field="id")
    _release(hold, ctx)
    uow.commit()


def _held_referral(uow: UnitOfWork, referral_id: uuid.UUID) -> Referral:
    # Locked, as erase locks it: a hold and an erasure of one referral take turns.
    row = uow.referrals.get(referral_id, for_update=True)
    if row is None:
        raise NotFound("no such referral")
    return row


def _release(hold: LegalHold, ctx: Context) -> None:
    hold.released_at = ctx.now
    hold.released_by = ctx.principal.actor


def represent_hold(hold: LegalHold, row: Referral) -> View:
    return {
        "referral_id": hold.referral_id,
        "status": row.status,
        "reason_code": hold.reason_code,
        "placed_at": hold.placed_at,
        "placed_by": hold.placed_by,
    }


# --- the report ----------------------------------------------------------------------------


def report(uow: UnitOfWork, ctx: Context, periods: RetentionPolicy, days: int) -> View:
    """What will be erased within ``days`` (and what is past due and waits for the
    worker), and what is held.  Ids, statuses, codes and dates only."""
    if not policy.may_review_retention(ctx.principal):
        raise Forbidden("only privacy officers and auditors review retention")
    due = due_within(uow.session, periods, ctx.now, days)
    holds = legal_holds.all_active(uow.session)
    held_rows = _referrals(uow.session, [h.referral_id for h in holds])
    held_since = _since(uow.session, [h.referral_id for h in holds])
    shown_due, shown_held = due[:REPORT_LIMIT], holds[:REPORT_LIMIT]
    uow.audit_disclosed([d.referral_id for d in shown_due])
    uow.audit_disclosed([h.referral_id for h in shown_held])
    uow.commit()
    return {
        "as_of": ctx.now,
        "days": days,
        "periods": {status.value: n for status, n in periods.days.items()},
        "due_count": len(due),
        "held_count": len(holds),
        "due": [
            {
                "referral_id": d.referral_id,
                "status": d.status,
                "outcome_code": d.outcome_code,
                "since": d.since,
                "due_at": d.due_at,
                "past_due": d.due_at <= ctx.now,
            }
            for d in shown_due
        ],
        "held": [
            {
                **represent_hold(h, held_rows[h.referral_id]),
                "due_at": _held_due(periods, held_rows[h.referral_id], held_since),
            }
            for h in shown_held
        ],
    }


def _referrals(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Referral]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Referral).where(Referral.id.in_(ids)))}


def _since(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    if not ids:
        return {}
    rows = session.execute(select(Referral.id, _clock_start()).where(Referral.id.in_(ids)))
    return {row.id: row.since for row in rows}


def _held_due(
    periods: RetentionPolicy, row: Referral, since: dict[uuid.UUID, datetime]
) -> datetime | None:
    """When the held referral would have been due (None: open, or already erased)."""
    if row.erased_at is not None:
        return None
    return periods.due_at(row.status, since[row.id])


# --- figures for metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    # Past their retention period and not held, not yet erased: the worker's backlog.
    due: int
    # Active legal holds.
    held: int


def backlog(session: Session, periods: RetentionPolicy, now: datetime) -> Backlog:
    """Two counts for gauges ("retention backlog", "legal holds"); no ids, no content."""
    due = session.scalar(
        select(func.count()).select_from(
            _due_query(periods, now).where(~legal_holds.is_held()).subquery()
        )
    )
    held = session.scalar(
        select(func.count()).select_from(LegalHold).where(LegalHold.released_at.is_(None))
    )
    return Backlog(due=due or 0, held=held or 0)
