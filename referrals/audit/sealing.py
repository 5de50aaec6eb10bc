"""The sealer, checkpoints and the verifier: the hash chain as stored in the database.

Requests only INSERT audit events; they never wait for the chain.  The sealer gives
committed events their places in order, under a PostgreSQL advisory lock, so any number
of app instances and sealer processes produce exactly one chain.  (On SQLite, a second
sealer's insert of the same sequence number fails and it simply tries again later.)
Sealing and checkpoints only INSERT, which is all the audit tables allow.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from referrals.audit import chain, disclosures
from referrals.db.models import AuditCheckpoint, AuditEvent, AuditSeal

# Events sealed per round (and per transaction) at most.
DEFAULT_BATCH = 1000
# pg_advisory_xact_lock key: "referral" in ASCII, so it reads as ours in pg_locks.
SEALER_LOCK = 0x726566657272616C


def body(event: AuditEvent, disclosed: Collection[uuid.UUID] = ()) -> dict[str, Any]:
    """What is hashed of an event: every column and the referrals it disclosed
    (``disclosures.of_events``), nothing derived."""
    fields = {
        "id": event.id,
        "recorded_at": event.recorded_at,
        "request_id": event.request_id,
        "actor_verified": event.actor_verified,
        "actor_issuer": event.actor_issuer,
        "actor_subject": event.actor_subject,
        "client_id": event.client_id,
        "roles": list(event.roles),
        "unit": event.unit,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": event.outcome,
        "http_status": event.http_status,
        "purpose": event.purpose,
    }
    # Added by revision 0007, and hashed only when present, so that the events sealed
    # before it still verify; removing or adding either later changes the hash.
    if event.reason is not None:
        fields["reason"] = event.reason
    if disclosed:
        fields["disclosed"] = sorted(str(referral_id) for referral_id in disclosed)
    return fields


def seal_pending(
    session: Session, clock: Callable[[], datetime], limit: int = DEFAULT_BATCH
) -> int:
    """Seal up to ``limit`` committed, unsealed events, oldest first; commits; returns how many."""
    _lock(session)
    now = clock()  # after the lock: a sealer that waited must not stamp the past
    last = session.execute(
        select(AuditSeal.seq, AuditSeal.hash).order_by(AuditSeal.seq.desc()).limit(1)
    ).first()
    seq, previous = (last.seq, last.hash) if last else (0, chain.GENESIS)
    pending = session.scalars(
        select(AuditEvent)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
        .order_by(AuditEvent.recorded_at, AuditEvent.id)
        .limit(limit)
    ).all()
    named = disclosures.of_events(session, [event.id for event in pending])
    for event in pending:
        seq += 1
        sealed = chain.seal(previous, seq, body(event, named.get(event.id, ())))
        session.add(AuditSeal(seq=seq, event_id=event.id, hash=sealed.hash, sealed_at=now))
        previous = sealed.hash
    session.commit()
    return len(pending)


def checkpoint(
    session: Session, key: Ed25519PrivateKey, clock: Callable[[], datetime]
) -> AuditCheckpoint | None:
    """Sign the current head, chained to the previous checkpoint; None if nothing new."""
    _lock(session)
    now = clock()
    head = session.execute(
        select(AuditSeal.seq, AuditSeal.hash).order_by(AuditSeal.seq.desc()).limit(1)
    ).first()
    latest = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)
    ).first()
    if head is None or (latest is not None and latest.seq >= head.seq):
        session.rollback()
        return None
    signed = chain.sign_checkpoint(
        key,
        chain.public_key_id(key.public_key()),
        head.seq,
        head.hash,
        now,
        latest.signature if latest else None,
    )
    row = AuditCheckpoint(**_checkpoint_fields(signed))
    session.add(row)
    session.commit()
    return row


def _checkpoint_fields(checkpoint: chain.Checkpoint | AuditCheckpoint) -> dict[str, Any]:
    """The same six fields, between the signed value and its row."""
    return {
        name: getattr(checkpoint, name)
        for name in ("seq", "head", "created_at", "previous", "key_id", "signature")
    }


# A transaction's audit event is stamped just before it commits, so an event can arrive
# after later-stamped ones were sealed, by as long as its commit waited for a lock.  The
# freshness check looks for pending events only this far behind the newest sealed one, to
# stay cheap on a long chain; the sealer itself looks everywhere.
LATE_COMMIT_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Unsigned:
    """Sealed events after the newest checkpoint: three indexed lookups, every round."""

    count: int
    oldest: datetime | None  # when the first of them was sealed
    newest_checkpoint: datetime | None


@dataclass(frozen=True)
class Backlog:
    """What waits for the sealer, as the freshness judgement needs it."""

    # recorded_at of the oldest committed event that has no seal yet
    oldest_pending: datetime | None
    unsigned: int
    oldest_unsigned: datetime | None
    newest_checkpoint: datetime | None


def unsigned(session: Session) -> Unsigned:
    head = session.scalar(select(func.max(AuditSeal.seq))) or 0
    latest = session.execute(
        select(AuditCheckpoint.seq, AuditCheckpoint.created_at)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).first()
    signed_to = latest.seq if latest else 0
    first = session.scalar(select(AuditSeal.sealed_at).where(AuditSeal.seq == signed_to + 1))
    return Unsigned(head - signed_to, first, latest.created_at if latest else None)


def oldest_pending(session: Session) -> datetime | None:
    newest_sealed = session.scalar(
        select(AuditEvent.recorded_at)
        .join(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .order_by(AuditSeal.seq.desc())
        .limit(1)
    )
    query = (
        select(func.min(AuditEvent.recorded_at))
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
    )
    if newest_sealed is not None:
        query = query.where(AuditEvent.recorded_at >= newest_sealed - LATE_COMMIT_WINDOW)
    return session.scalar(query)


def backlog(session: Session) -> Backlog:
    signed = unsigned(session)
    return Backlog(
        oldest_pending=oldest_pending(session),
        unsigned=signed.count,
        oldest_unsigned=signed.oldest,
        newest_checkpoint=signed.newest_checkpoint,
    )


def _lock(session: Session) -> None:
    """One sealer at a time across every process (held until the transaction ends)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK})


@dataclass(frozen=True)
class Verification:
    finding: chain.Finding | None
    sealed: int
    pending: int
    checkpoints: int

    @property
    def ok(self) -> bool:
        return self.finding is None


def verify(session: Session, public_keys: Mapping[str, Any]) -> Verification:
    """Recompute the whole chain and every checkpoint; name the first problem."""
    checkpoints = [
        chain.Checkpoint(**_checkpoint_fields(c))
        for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
    ]
    wanted = {c.seq for c in checkpoints}
    heads: dict[int, bytes] = {}
    sealed = 0

    rows = session.execute(
        select(AuditSeal, AuditEvent)
        .join(AuditEvent, AuditEvent.id == AuditSeal.event_id)
        .order_by(AuditSeal.seq)
        .execution_options(yield_per=1000)  # streams: memory does not grow with the chain
    )

    def stream() -> Iterator[chain.SealedEvent]:
        nonlocal sealed
        for partition in rows.partitions():
            named = disclosures.of_events(session, [event.id for _, event in partition])
            for seal, event in partition:
                sealed += 1
                if seal.seq in wanted:
                    heads[seal.seq] = seal.hash
                disclosed = named.get(event.id, ())
                yield chain.SealedEvent(seq=seal.seq, body=body(event, disclosed), hash=seal.hash)

    try:
        finding = chain.verify_chain(stream())
    finally:
        rows.close()  # the verifier may stop at the first problem; free the server cursor
    if finding is None:
        finding = chain.verify_checkpoints(checkpoints, heads, public_keys)
    pending = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
    )
    return Verification(finding, sealed, int(pending or 0), len(checkpoints))
