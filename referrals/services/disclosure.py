"""Revealing a referral's identity to the receiving unit before it decides.

Two-phase disclosure (referrals/domain/disclosure.py) shows the receiving unit only what
it needs to decide.  A caseworker who must check first whether the young person is
already known to the unit reveals the rest, with a reason code: for the whole unit (the
unit is the recipient; the decision and any check are its, and colleagues confer), on the
timeline for both sides, and in the audit trail as ``referral:reveal``.
"""

from __future__ import annotations

import uuid

from referrals.domain.codes import Disclosure, RevealReason, Side, Status
from referrals.domain.errors import ActionNotAllowed
from referrals.services.access import disclosure, open_referral
from referrals.services.context import Context
from referrals.services.errors import Conflict
from referrals.services.referrals import View, get_view
from referrals.services.timeline import record_event
from referrals.services.uow import UnitOfWork

REVEAL = "reveal"


def reveal(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID, reason: RevealReason) -> View:
    row, side = open_referral(uow, ctx, referral_id)
    if side is not Side.RECEIVER:
        raise ActionNotAllowed("only the receiving unit reveals a referral's identity")
    if row.erased_at is not None:
        raise Conflict("the referral has been erased", field="status")
    if row.status != Status.REQUESTED:
        raise Conflict("only a referral awaiting the decision is revealed", field="status")
    if disclosure(ctx, row, side) is Disclosure.FULL:
        raise Conflict("the identity is already disclosed to this unit", field="reason_code")
    row.identity_disclosed_to = row.receiving_unit_id
    row.updated_at = ctx.now
    record_event(row, ctx, None, action=REVEAL, from_status=row.status, reason_code=reason)
    uow.commit()
    return get_view(ctx, row, side)
