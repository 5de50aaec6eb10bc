"""Auditors' use cases: search the trail, a referral's access log, verify the chain.

Auditors see identifiers and codes only, never case content; their own queries are
audited like any other request (the filters themselves are not recorded).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, or_, select

from referrals.audit import disclosures, freshness, sealing
from referrals.audit.freshness import FreshnessLimits
from referrals.auth import policy
from referrals.db.models import AuditCheckpoint, AuditEvent, AuditRefusalTally, AuditSeal
from referrals.services import cursors
from referrals.services.context import Context
from referrals.services.errors import Forbidden
from referrals.services.uow import UnitOfWork


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    referral: uuid.UUID | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Only accesses outside the actor's normal scope: the mandatory review report.
    break_glass: bool = False
    # With ``actor``: also what refused tokens claimed (by default, verified actors only,
    # since a refused token names whoever it likes).
    unverified: bool = False


def search(
    uow: UnitOfWork, ctx: Context, where: EventFilter, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    _require_auditor(ctx)
    query = _events()
    if where.actor:
        query = query.where(AuditEvent.actor_subject == where.actor)
        if not where.unverified:
            query = query.where(AuditEvent.actor_verified.is_(True))
    if where.referral:
        query = query.where(concerning(where.referral))
    if where.action:
        query = query.where(AuditEvent.action == where.action)
    if where.outcome:
        query = query.where(AuditEvent.outcome == where.outcome)
    if where.break_glass:
        query = query.where(AuditEvent.purpose.is_not(None))
    if where.since:
        query = query.where(AuditEvent.recorded_at >= where.since)
    if where.until:
        query = query.where(AuditEvent.recorded_at < where.until)
    after = cursors.decode(cursor)
    if after is not None:
        at, event_id = after
        query = query.where(
            or_(
                AuditEvent.recorded_at < at,
                and_(AuditEvent.recorded_at == at, AuditEvent.id < event_id),
            )
        )
    rows = uow.session.execute(
        query.order_by(AuditEvent.recorded_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
    ).all()
    items = represent_all(uow, rows[:limit])
    last = rows[limit - 1][0] if len(rows) > limit else None
    next_cursor = cursors.encode(last.recorded_at, last.id) if last else None
    uow.commit()
    return {"items": items, "next_cursor": next_cursor}


def access_log(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> dict[str, Any]:
    """Who accessed this referral, when, with what outcome: oldest first."""
    _require_auditor(ctx)
    rows = uow.session.execute(
        _events().where(concerning(referral_id)).order_by(AuditEvent.recorded_at, AuditEvent.id)
    ).all()
    uow.audit_target("referral", referral_id)
    items = represent_all(uow, rows)
    uow.commit()
    return {"items": items}


def concerning(referral_id: uuid.UUID) -> ColumnElement[bool]:
    """Events that targeted the referral, or disclosed it in a list, search or warning."""
    return or_(
        and_(AuditEvent.target_type == "referral", AuditEvent.target_id == str(referral_id)),
        AuditEvent.id.in_(disclosures.naming(referral_id)),
    )


def _events() -> Select[AuditEvent, int, int]:
    """Events with their chain position and, for a counted refusal, how many it stands for."""
    return (
        select(AuditEvent, AuditSeal.seq, AuditRefusalTally.count)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .outerjoin(AuditRefusalTally, AuditRefusalTally.event_id == AuditEvent.id)
    )


def verify(
    uow: UnitOfWork, ctx: Context, public_keys: Mapping[str, Any], limits: FreshnessLimits
) -> dict[str, Any]:
    """Is the chain intact ("failed" names the first problem), are events in it flagged by
    the sealer ("flagged": a recorded_at far from when it was first seen, to be reviewed),
    and is it current ("behind": events wait for their seal, or sealed ones for a
    checkpoint, longer than allowed)?"""
    _require_auditor(ctx)
    with uow.reading() as session:
        result = sealing.verify(session, public_keys)
        fresh = freshness.judge(sealing.backlog(session), ctx.now, limits)
    uow.commit()
    finding = result.finding
    return {
        "status": "failed"
        if finding is not None
        else "flagged"
        if result.flagged
        else "ok"
        if fresh.ok
        else "behind",
        "finding": None
        if finding is None
        else {"seq": finding.seq, "problem": finding.problem, "detail": finding.detail},
        "sealed": result.sealed,
        "pending": result.pending,
        "checkpoints": result.checkpoints,
        "flagged": [{"seq": f.seq, "flag": f.flag} for f in result.flagged],
        "freshness": describe(fresh, limits),
    }


def describe(fresh: freshness.Freshness, limits: FreshnessLimits) -> dict[str, Any]:
    return {
        "problems": list(fresh.problems),
        "oldest_pending_age": fresh.oldest_pending_age,
        "unsigned": fresh.unsigned,
        "oldest_unsigned_age": fresh.oldest_unsigned_age,
        "newest_checkpoint": fresh.newest_checkpoint,
        "allowed_lag": limits.allowed_lag,
        "checkpoint_interval": limits.checkpoint_interval,
    }


def checkpoints(uow: UnitOfWork, ctx: Context) -> dict[str, Any]:
    _require_auditor(ctx)
    rows = uow.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
    uow.commit()
    return {
        "items": [
            {
                "seq": c.seq,
                "head": c.head.hex(),
                "created_at": c.created_at,
                "previous": c.previous.hex() if c.previous else None,
                "key_id": c.key_id,
                "signature": c.signature.hex(),
            }
            for c in rows
        ]
    }


def represent_all(
    uow: UnitOfWork, rows: Sequence[Row[AuditEvent, int, int]]
) -> list[dict[str, Any]]:
    named = disclosures.of_events(uow.session, [event.id for event, *_ in rows])
    return [
        represent(event, seq, repeated, named.get(event.id, ())) for event, seq, repeated in rows
    ]


def represent(
    event: AuditEvent,
    seq: int | None,
    repeated: int | None = None,
    disclosed: Collection[uuid.UUID] = (),
) -> dict[str, Any]:
    """The sealed body of the event (exactly what is hashed), with the actor grouped, and
    for an unverified refusal the number of refusals in its minute (this one included)."""
    fields = sealing.body(event, disclosed)
    actor = {name: fields.pop(f"actor_{name}") for name in ("verified", "issuer", "subject")}
    actor |= {name: fields.pop(name) for name in ("client_id", "roles", "unit")}
    return {**fields, "seq": seq, "actor": actor, "repeated": repeated}


def _require_auditor(ctx: Context) -> None:
    if not policy.may_audit(ctx.principal):
        raise Forbidden("only auditors read the audit trail")
