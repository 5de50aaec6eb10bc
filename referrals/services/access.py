"""Loading a referral on behalf of a caller: the single door to case content.

Every use case that reads or changes a referral comes through ``open_referral``, so
this is where each access will be recorded in the audit trail (DESIGN §5).
"""

from __future__ import annotations

import uuid

from referrals.auth import policy
from referrals.db.models import Referral
from referrals.domain.codes import Side
from referrals.services.context import Context
from referrals.services.errors import Forbidden, NotFound, PreconditionFailed
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Sealer


def open_referral(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> tuple[Referral, Side]:
    """The referral and the caller's side of it; 404 when outside the caller's scope."""
    if not policy.may_work_with_cases(ctx.principal):
        raise Forbidden("this role has no access to case content")
    row = uow.referrals.get(referral_id)
    side = policy.side_of(ctx.principal, row) if row is not None else None
    if row is None or side is None:
        raise NotFound("no such referral")
    return row, side


def sealer_for(ctx: Context, row: Referral) -> Sealer | None:
    """The referral's sealer, or None once it has been erased (nothing left to open)."""
    return None if row.erased_at is not None else ctx.vault.sealer(row)


def check_version(row: Referral, if_match: int | None) -> None:
    if if_match is not None and row.version != if_match:
        raise PreconditionFailed("the referral has changed since it was read")
