"""Loading a referral on behalf of a caller: the single door to case content.

Every use case that reads or changes a referral comes through ``open_referral``, so
this is where each access will be recorded in the audit trail (SECURITY.md: Audit trail).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import cast

from referrals.auth import policy
from referrals.db.models import BreakGlassGrant, Referral, Unit
from referrals.domain.codes import Disclosure, Side, UnitKind
from referrals.domain.disclosure import disclosure_of
from referrals.services import staff
from referrals.services.context import Context
from referrals.services.errors import Forbidden, NotFound, PreconditionFailed
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Sealer

# How long one break of the glass opens a referral to its actor.
BREAK_GLASS_WINDOW = timedelta(minutes=30)


def open_referral(
    uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID, *, read_only: bool = False
) -> tuple[Referral, Side]:
    """The referral and the caller's side of it; 404 when outside the caller's scope.

    A read (``read_only``) outside the caller's unit succeeds only through a break of the
    glass: the caseworker sends a reason (``ctx.break_glass``), which opens the referral
    to them for ``BREAK_GLASS_WINDOW``; every read in that window is audited with the
    reason and listed for review.  They read as a receiving unit that is not theirs: no
    internal notes, and no transitions (those never pass ``read_only``)."""
    if not policy.may_work_with_cases(ctx.principal):
        raise Forbidden("this role has no access to case content")
    row = uow.referrals.get(referral_id)
    side = policy.side_of(ctx.principal, row) if row is not None else None
    if row is not None and side is None and read_only:
        side = _through_broken_glass(uow, ctx, row)
    if row is None or side is None:
        raise NotFound("no such referral")
    unit_id = row.receiving_unit_id
    if side is Side.RECEIVER and unit_id is not None and ctx.principal.unit == unit_id:
        staff.note_presence(uow, ctx, unit_id)
    return row, side


def referring_unit(uow: UnitOfWork, ctx: Context) -> Unit:
    """The caller's unit, which must be a registered referring unit (youth workers
    opening a referral or asking where one would go)."""
    unit = uow.units.get(_opener_unit(ctx))
    _require_referrer(unit.kind if unit is not None else None)
    return cast(Unit, unit)  # a unit that is not there has no kind: refused above


def referring_unit_id(ctx: Context, kinds: Mapping[str, str]) -> str:
    """``referring_unit`` checked against units' kinds already read (``routing_inputs``):
    the same rule, without a query of its own."""
    unit_id = _opener_unit(ctx)
    _require_referrer(kinds.get(unit_id))
    return unit_id


def _opener_unit(ctx: Context) -> str:
    if not policy.may_open_referral(ctx.principal):
        raise Forbidden("only youth workers of a referring unit open referrals")
    return ctx.principal.unit or ""


def _require_referrer(kind: str | None) -> None:
    # An unregistered unit has no kind (None).
    if kind != UnitKind.REFERRER:
        raise Forbidden("the caller's unit is not a registered referring unit")


def _through_broken_glass(uow: UnitOfWork, ctx: Context, row: Referral) -> Side | None:
    unit = uow.units.get(ctx.principal.unit) if ctx.principal.unit else None
    if not policy.may_break_glass(ctx.principal, row, unit.kind if unit else None):
        return None
    grant = uow.referrals.active_grant(ctx.principal.actor, row.id, ctx.now)
    if grant is None and ctx.break_glass is not None:
        grant = BreakGlassGrant(
            actor=ctx.principal.actor,
            referral_id=row.id,
            reason=ctx.break_glass,
            granted_at=ctx.now,
            expires_at=ctx.now + BREAK_GLASS_WINDOW,
        )
        uow.referrals.add_grant(grant)
    if grant is None:
        return None
    if uow.audit is not None:
        uow.audit.purpose = f"break-glass:{grant.reason}"
    return Side.RECEIVER


def sealer_for(ctx: Context, row: Referral) -> Sealer | None:
    """The referral's sealer, or None once it has been erased (nothing left to open)."""
    return None if row.erased_at is not None else ctx.vault.sealer(row)


def check_version(row: Referral, if_match: int | None) -> None:
    if if_match is not None and row.version != if_match:
        raise PreconditionFailed("the referral has changed since it was read")


def disclosure(ctx: Context, row: Referral, side: Side) -> Disclosure:
    """What ``side`` of ``row`` may see of it now (referrals/domain/disclosure.py).

    A caller on the receiving side whom the policy does not place there reads through a
    break of the glass (``open_referral`` let them in only that way)."""
    return disclosure_of(
        side,
        policy=ctx.disclosure,
        caller_unit=ctx.principal.unit,
        receiving_unit=row.receiving_unit_id,
        disclosed_to=row.identity_disclosed_to,
        break_glass=side is Side.RECEIVER and policy.side_of(ctx.principal, row) is None,
    )


def case_sealer(ctx: Context, row: Referral, seen: Disclosure) -> Sealer | None:
    """The sealer to open the personal fields with: none when they may not be shown
    (erased, or not disclosed to the caller), so undisclosed values are never decrypted."""
    return sealer_for(ctx, row) if seen is Disclosure.FULL else None
