"""The referrals an audit event disclosed besides its own target (``audit_event_targets``).

Read in batches beside the events they belong to: the sealer and the verifier hash them
with their event, the auditors' views show them, and a referral's access log finds the
events that named it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from referrals.db.models import AuditEventTarget


def of_events(
    session: Session, event_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Per event id, the referrals it named (events that named none are absent)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if not event_ids:
        return found
    rows = session.execute(
        select(AuditEventTarget.event_id, AuditEventTarget.referral_id).where(
            AuditEventTarget.event_id.in_(event_ids)
        )
    )
    for event_id, referral_id in rows:
        found.setdefault(event_id, []).append(referral_id)
    return found


def naming(referral_id: uuid.UUID) -> Select[uuid.UUID]:
    """The ids of the events that disclosed ``referral_id`` in a list, search or warning."""
    return select(AuditEventTarget.event_id).where(AuditEventTarget.referral_id == referral_id)
