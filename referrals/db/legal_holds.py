"""Legal holds in the database: the active hold of a referral, and every active hold."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from referrals.db.models import LegalHold, Referral


def active(session: Session, referral_id: uuid.UUID) -> LegalHold | None:
    return session.scalars(
        select(LegalHold).where(
            LegalHold.referral_id == referral_id, LegalHold.released_at.is_(None)
        )
    ).first()


def all_active(session: Session) -> Sequence[LegalHold]:
    return session.scalars(
        select(LegalHold)
        .where(LegalHold.released_at.is_(None))
        .order_by(LegalHold.placed_at, LegalHold.id)
    ).all()


def is_held() -> ColumnElement[bool]:
    """True for a referral (in a query over ``Referral``) that has an active hold."""
    return exists().where(LegalHold.referral_id == Referral.id, LegalHold.released_at.is_(None))


def forget_released(session: Session, referral_id: uuid.UUID) -> None:
    """Remove the released holds of a draft that is being deleted.  The audit trail keeps
    each hold and its release (``referral:legal-hold``, ``referral:legal-hold-release``);
    this table is only the working state that stops erasure."""
    session.execute(
        delete(LegalHold).where(
            LegalHold.referral_id == referral_id, LegalHold.released_at.is_not(None)
        )
    )
