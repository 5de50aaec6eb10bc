"""Audit events as plain records for an archive: oldest first, with their chain position.

Each record is the body exactly as hashed (the sealer's flag, ``sealer_flag``, included
when set), plus ``seq`` and ``hash``: an archive can recompute the chain from it alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from referrals.audit import disclosures
from referrals.audit.sealing import hashed
from referrals.db.models import AuditEvent, AuditSeal


def _query(since: datetime | None) -> Select[AuditEvent, int, bytes, str | None]:
    query = select(AuditEvent, AuditSeal.seq, AuditSeal.hash, AuditSeal.flag).outerjoin(
        AuditSeal, AuditSeal.event_id == AuditEvent.id
    )
    return query.where(AuditEvent.recorded_at >= since) if since else query


def count(session: Session, since: datetime | None) -> int:
    return int(session.scalar(select(func.count()).select_from(_query(since).subquery())) or 0)


def stream(session: Session, since: datetime | None) -> Iterator[dict[str, Any]]:
    rows = session.execute(
        _query(since)
        .order_by(AuditSeal.seq.nulls_last(), AuditEvent.recorded_at, AuditEvent.id)
        .execution_options(yield_per=1000)
    )
    try:
        for partition in rows.partitions():
            named = disclosures.of_events(session, [event.id for event, *_ in partition])
            for event, seq, chain_hash, flag in partition:
                yield {
                    **hashed(event, flag, named.get(event.id, ())),
                    "seq": seq,
                    "hash": chain_hash.hex() if chain_hash else None,
                }
    finally:
        rows.close()
