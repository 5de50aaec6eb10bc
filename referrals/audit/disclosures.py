"""The referrals an audit event disclosed besides its own target (``audit_event_targets``).

Read in batches beside the events they belong to: the sealer and the verifier hash them
with their event, the auditors' views show them, and a referral's access log finds the
events that named it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, Select, Uuid, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import QueryableAttribute, Session

from referrals.db.models import AuditEventTarget, AuditSeal


def of_events(
    session: Session, event_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Per event id, the referrals it named (events that named none are absent)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if not event_ids:
        return found
    rows = session.execute(
        select(AuditEventTarget.event_id, AuditEventTarget.referral_id).where(
            among(session, AuditEventTarget.event_id, event_ids)
        )
    )
    for event_id, referral_id in rows:
        found.setdefault(event_id, []).append(referral_id)
    return found


def of_sealed(session: Session, first: int, last: int) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Per event id, the referrals it named, for the events sealed at ``first`` to ``last``
    (events that named none are absent): what ``of_events`` gives for those events, asked
    by a range of the seals' primary key rather than a list of thousands of ids."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    # A semi-join (IN), not a join: each target once, however many seals name its event.
    sealed = select(AuditSeal.event_id).where(AuditSeal.seq >= first, AuditSeal.seq <= last)
    rows = session.execute(
        select(AuditEventTarget.event_id, AuditEventTarget.referral_id).where(
            AuditEventTarget.event_id.in_(sealed)
        )
    )
    for event_id, referral_id in rows:
        found.setdefault(event_id, []).append(referral_id)
    return found


def among(
    session: Session,
    column: ColumnElement[uuid.UUID] | QueryableAttribute[uuid.UUID],
    ids: Collection[uuid.UUID],
) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter however many
    ids: the sealer and the verifier ask for thousands at a time, and an IN list of that
    many parameters costs more to render and parse than to run."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Uuid())))
    return column.in_(ids)


def naming(referral_id: uuid.UUID) -> Select[uuid.UUID]:
    """The ids of the events that disclosed ``referral_id`` in a list, search or warning."""
    return select(AuditEventTarget.event_id).where(AuditEventTarget.referral_id == referral_id)
