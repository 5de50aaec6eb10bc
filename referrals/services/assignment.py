"""Caseloads that move: take, hand over or release one referral, and a unit lead's
reassignment of every open referral of one staff member to another."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from referrals.auth import policy
from referrals.db.caseloads import Move
from referrals.db.models import Referral
from referrals.domain.codes import Status, UnitKind
from referrals.domain.errors import ActionNotAllowed
from referrals.services import records, staff
from referrals.services.access import check_version, open_referral
from referrals.services.context import Context
from referrals.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from referrals.services.timeline import record_event
from referrals.services.uow import UnitOfWork

# Accepted and not yet final.  A requested referral is not yet the unit's case: accepting
# it names its first assignee.
ASSIGNABLE: tuple[str, ...] = (Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD)
ASSIGN, REASSIGN = "assign", "reassign"


@dataclass(frozen=True)
class Reassignment:
    unit: str
    from_subject: str
    to_subject: str
    dry_run: bool
    referrals: list[uuid.UUID]


def assign(
    uow: UnitOfWork,
    ctx: Context,
    referral_id: uuid.UUID,
    assignee: str | None,
    *,
    if_match: int | None,
) -> dict[str, Any]:
    """Set who handles an open referral of the caller's unit (None: nobody)."""
    row, side = open_referral(uow, ctx, referral_id)
    check_version(row, if_match)
    if not policy.may_assign(ctx.principal, side, _held_by_caller_or_nobody(row, ctx)):
        raise ActionNotAllowed(
            "only the receiving unit assigns; a colleague's case is moved "
            "by its holder or the unit lead"
        )
    if row.erased_at is not None:
        raise Conflict("the referral has been erased", field="status")
    if row.status not in ASSIGNABLE:
        raise Conflict(f"a referral that is {row.status} is not assigned", field="status")
    unit_id = row.receiving_unit_id or ""
    new = staff.resolve(uow, ctx, unit_id, assignee, field="assignee") if assignee else None
    if (new, ctx.principal.issuer if new else None) != (row.assignee, row.assignee_issuer):
        previous = row.assignee
        set_assignee(row, ctx, new)
        row.updated_at = ctx.now
        record_event(
            row,
            ctx,
            None,
            action=ASSIGN,
            from_status=row.status,
            previous_assignee=previous,
            assignee=new,
        )
    uow.commit()
    return records.represent(row, side, records.open_case(row, ctx.vault.sealer(row)), now=ctx.now)


def set_assignee(row: Referral, ctx: Context, subject: str | None) -> None:
    """A resolved staff subject (``staff.resolve``), under the caller's issuer, or nobody."""
    row.assignee = subject
    row.assignee_issuer = ctx.principal.issuer if subject is not None else None


def reassign(
    uow: UnitOfWork,
    ctx: Context,
    unit_id: str,
    *,
    from_subject: str,
    to_subject: str,
    dry_run: bool,
) -> Reassignment:
    """Every open referral of ``from_subject`` at the unit goes to ``to_subject``.

    One UPDATE, one batched INSERT of timeline events and one audit event naming every
    referral moved; ``dry_run`` lists what would move and changes nothing."""
    if not policy.may_reassign_caseload(ctx.principal):
        raise Forbidden("only a unit lead reassigns a caseload")
    unit = uow.units.get(unit_id) if ctx.principal.unit == unit_id else None
    if unit is None or unit.kind != UnitKind.RECEIVER:
        # Another unit's caseloads are outside the caller's scope, like its referrals.
        raise NotFound("no such unit")
    staff.note_presence(uow, ctx, unit_id)
    staff.resolve(uow, ctx, unit_id, from_subject, field="from")
    staff.resolve(uow, ctx, unit_id, to_subject, field="to")
    if from_subject == to_subject:
        raise Unprocessable("must differ from 'from'", field="to")
    move = Move(unit_id, ctx.principal.issuer, from_subject, to_subject, ASSIGNABLE)
    if dry_run:
        moved = uow.caseloads.held(move)
    else:
        moved_with_status = uow.caseloads.move(move, ctx.now)
        moved = [referral_id for referral_id, _status in moved_with_status]
        _record_moves(uow, ctx, move, moved_with_status)
    uow.audit_disclosed(moved)
    uow.commit()
    return Reassignment(unit_id, from_subject, to_subject, dry_run, moved)


def _record_moves(
    uow: UnitOfWork, ctx: Context, move: Move, moved: list[tuple[uuid.UUID, str]]
) -> None:
    """One timeline event per referral moved, written as one statement."""
    positions = uow.caseloads.next_positions([referral_id for referral_id, _ in moved])
    uow.caseloads.add_events(
        [
            {
                "id": uuid.uuid4(),
                "referral_id": referral_id,
                "position": positions[referral_id],
                "at": ctx.now,
                "action": REASSIGN,
                "actor": ctx.principal.actor,
                "actor_unit": ctx.principal.unit,
                "from_status": status,
                "to_status": status,
                "from_unit": None,
                "to_unit": move.unit_id,
                "reason_code": None,
                "outcome_code": None,
                "reason_text": None,
                "rule_id": None,
                "ruleset_version": None,
                "previous_assignee": move.from_subject,
                "assignee": move.to_subject,
            }
            for referral_id, status in moved
        ]
    )


def _held_by_caller_or_nobody(row: Referral, ctx: Context) -> bool:
    if row.assignee is None:
        return True
    return row.assignee_issuer == ctx.principal.issuer and row.assignee == ctx.principal.subject
