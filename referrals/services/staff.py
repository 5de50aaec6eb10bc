"""Who is staff of a receiving unit, as far as the service can know without a directory.

The identity provider vouches, in every token, for the caller's role and unit.  When a
caseworker or unit lead acts on their unit's referrals (the inbox, one referral, an
assignment) the service remembers them in ``unit_staff``; a referral is assigned only to
someone remembered there for its unit, under the caller's issuer.  So an assignee is
always a real person of that unit who has signed in to it, never free text, never
someone of another unit.
"""

from __future__ import annotations

from referrals.auth import policy
from referrals.auth.principal import Role
from referrals.db.caseloads import StaffIdentity
from referrals.domain.codes import UnitKind
from referrals.services.context import Context
from referrals.services.errors import Unprocessable
from referrals.services.uow import UnitOfWork

# The subject column's size: a longer subject is not remembered (and so not assignable).
SUBJECT_LENGTH = 200


def note_presence(uow: UnitOfWork, ctx: Context, unit_id: str) -> None:
    """Remember the caller as staff of ``unit_id``, which their token says they work for.

    Callers make sure the unit is the caller's own and a registered receiving unit."""
    principal = ctx.principal
    if not policy.works_for_receiving_unit(principal) or principal.unit != unit_id:
        return
    if len(principal.subject) > SUBJECT_LENGTH:
        return
    role = Role.UNIT_LEAD if principal.has_role(Role.UNIT_LEAD) else Role.CASEWORKER
    uow.staff.seen(unit_id, StaffIdentity(principal.issuer, principal.subject), role, ctx.now)


def note_inbox_presence(uow: UnitOfWork, ctx: Context) -> None:
    """The inbox names the caller's unit only by token: remember them once it is real."""
    unit_id = ctx.principal.unit
    if unit_id is None or not policy.works_for_receiving_unit(ctx.principal):
        return
    unit = uow.units.get(unit_id)
    if unit is not None and unit.kind == UnitKind.RECEIVER:
        note_presence(uow, ctx, unit_id)


def resolve(uow: UnitOfWork, ctx: Context, unit_id: str, subject: str, *, field: str) -> str:
    """``subject`` as an assignee at ``unit_id``: a known caseworker or unit lead of it.

    One answer for a subject of another unit and one never seen: which subjects exist
    elsewhere is no business of this caller."""
    known = uow.staff.get(unit_id, StaffIdentity(ctx.principal.issuer, subject))
    if known is None or not policy.may_be_assigned(known.role):
        raise Unprocessable(
            "no caseworker or unit lead of this unit is known by this subject", field=field
        )
    return subject
