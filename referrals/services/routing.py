"""Choose the receiving unit on submit.  The client never chooses it.

This is the simple first rule set: the receiving unit serving the subject's
district, else the configured central intake unit.  The ordered rule engine of
DESIGN §6 replaces ``choose_receiver`` and keeps its signature.
"""

from __future__ import annotations

from referrals.db.models import Referral
from referrals.domain.codes import UnitKind
from referrals.services.errors import Conflict
from referrals.services.uow import UnitOfWork


def choose_receiver(uow: UnitOfWork, referral: Referral, default_intake_unit: str) -> str:
    if referral.district:
        for unit in uow.units.receivers():
            if referral.district in unit.districts:
                return unit.id
    intake = uow.units.get(default_intake_unit)
    if intake is None or intake.kind != UnitKind.RECEIVER:
        raise Conflict("no receiving unit serves this district and no intake unit is configured")
    return intake.id
