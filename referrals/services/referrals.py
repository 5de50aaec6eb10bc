"""Referral use cases: create, read, list, edit and delete drafts, and every transition."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from referrals.auth import policy
from referrals.auth.principal import Role
from referrals.db.models import Referral
from referrals.db.repositories import ListFilter
from referrals.domain import lifecycle
from referrals.domain.codes import (
    Action,
    LegalBasis,
    OutcomeCode,
    Priority,
    ReasonCode,
    Side,
    Status,
    UnitKind,
)
from referrals.domain.errors import ActionNotAllowed, MissingRequirement
from referrals.domain.personal_number import age_on
from referrals.services import records
from referrals.services.access import check_version, open_referral
from referrals.services.context import Context
from referrals.services.errors import (
    Conflict,
    Forbidden,
    Unprocessable,
)
from referrals.services.routing import choose_receiver
from referrals.services.timeline import record_event
from referrals.services.uow import UnitOfWork

View = dict[str, Any]


@dataclass(frozen=True)
class Page:
    items: list[View]
    next_cursor: str | None


# Extra work a caller wants in the same transaction as the new referral (idempotency).
BeforeCommit = Callable[[UnitOfWork, uuid.UUID], None]


def create(
    uow: UnitOfWork,
    ctx: Context,
    body: Mapping[str, Any],
    *,
    submit: bool,
    before_commit: BeforeCommit | None = None,
) -> View:
    if not policy.may_open_referral(ctx.principal):
        raise Forbidden("only youth workers of a referring unit open referrals")
    sending_unit = uow.units.get(ctx.principal.unit or "")
    if sending_unit is None or sending_unit.kind != UnitKind.REFERRER:
        raise Forbidden("the caller's unit is not a registered referring unit")
    row = Referral(
        id=uuid.uuid4(),
        status=Status.DRAFT,
        sending_unit_id=sending_unit.id,
        created_by=ctx.principal.actor,
        priority=Priority.NORMAL,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    records.write_case(row, body, today=ctx.today)
    uow.referrals.add(row)
    record_event(row, ctx, action="create", from_status=None)
    if submit:
        _submit(uow, ctx, row)
    if before_commit is not None:
        before_commit(uow, row.id)
    uow.commit()
    return records.represent(row, Side.SENDER, now=ctx.now)


def get(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> View:
    row, side = open_referral(uow, ctx, referral_id)
    return records.represent(row, side, now=ctx.now)


def list_page(
    uow: UnitOfWork,
    ctx: Context,
    *,
    status: Status | None,
    priority: Priority | None,
    overdue: bool | None,
    limit: int,
    cursor: str | None,
) -> Page:
    if not policy.may_work_with_cases(ctx.principal):
        raise Forbidden("this role has no referral inbox or outbox")
    principal = ctx.principal
    where = ListFilter(
        sending_unit=principal.unit if principal.has_role(Role.YOUTH_WORKER) else None,
        receiving_unit=principal.unit if principal.has_role(Role.CASEWORKER) else None,
        hidden_from_receiver=(Status.DRAFT,),
        status=status,
        priority=priority,
        overdue=overdue,
        now=ctx.now,
        pending_statuses=(Status.REQUESTED,),
    )
    rows = uow.referrals.page(where, limit=limit + 1, after=_decode_cursor(cursor))
    items = [
        records.represent(r, policy.side_of(ctx.principal, r), now=ctx.now) for r in rows[:limit]
    ]
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def update_draft(
    uow: UnitOfWork,
    ctx: Context,
    referral_id: uuid.UUID,
    patch: Mapping[str, Any],
    *,
    if_match: int | None,
) -> View:
    row, side = open_referral(uow, ctx, referral_id)
    check_version(row, if_match)
    _require_draft_owner(row, side, "edited")
    merged = _merge_patch(records.case_input(row), patch)
    records.write_case(row, merged, today=ctx.today)
    row.updated_at = ctx.now
    uow.commit()
    return records.represent(row, side, now=ctx.now)


def delete_draft(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> None:
    row, side = open_referral(uow, ctx, referral_id)
    _require_draft_owner(row, side, "deleted")
    uow.referrals.delete(row)
    uow.commit()


def perform(
    uow: UnitOfWork,
    ctx: Context,
    referral_id: uuid.UUID,
    action: Action,
    inputs: Mapping[str, Any],
    *,
    if_match: int | None,
) -> View:
    row, side = open_referral(uow, ctx, referral_id)
    check_version(row, if_match)
    transition = lifecycle.plan(action, Status(row.status), side)
    reason = _optional(ReasonCode, inputs.get("reason_code"))
    outcome = _optional(OutcomeCode, inputs.get("outcome_code"))
    lifecycle.check_inputs(
        transition, reason_code=reason, outcome_code=outcome, unit=inputs.get("unit")
    )
    if action is Action.SUBMIT:
        _submit(uow, ctx, row)
    else:
        _apply(uow, ctx, row, transition, inputs)
    uow.commit()
    return records.represent(row, side, now=ctx.now)


def _apply(
    uow: UnitOfWork,
    ctx: Context,
    row: Referral,
    transition: lifecycle.Transition,
    inputs: Mapping[str, Any],
) -> None:
    from_status, from_unit = row.status, row.receiving_unit_id
    if transition.action is Action.REDIRECT:
        target = uow.units.get(inputs["unit"])
        if target is None or target.kind != UnitKind.RECEIVER:
            raise Unprocessable("no receiving unit with this id", field="unit")
        if target.id == row.receiving_unit_id:
            raise Unprocessable("the referral is already at this unit", field="unit")
        row.receiving_unit_id = target.id
        row.assignee = None
    if transition.target is not None:
        row.status = transition.target
    if transition.action is Action.ACCEPT:
        row.assignee = inputs.get("assignee")
    # The reason code explains the current status; a transition without one clears it.
    row.reason_code = inputs["reason_code"] if transition.needs_reason else None
    if transition.needs_outcome:
        row.outcome_code = inputs["outcome_code"]
    row.updated_at = ctx.now
    record_event(
        row,
        ctx,
        action=transition.action,
        from_status=from_status,
        from_unit=from_unit,
        reason_code=inputs.get("reason_code"),
        reason_text=inputs.get("reason_text"),
        outcome_code=inputs.get("outcome_code"),
    )


def _submit(uow: UnitOfWork, ctx: Context, row: Referral) -> None:
    """draft -> requested: check what submission needs, route, set the deadline."""
    if row.status != Status.DRAFT:
        raise Conflict(f"cannot submit a referral that is {row.status}", field="status")
    if row.legal_basis is None:
        raise MissingRequirement("a legal basis is required to submit", field="legal_basis")
    if row.legal_basis == LegalBasis.CONSENT and row.consent_given_by is None:
        raise MissingRequirement("consent needs who gave it and when", field="consent")
    if not row.categories:
        raise MissingRequirement("at least one concern category is required", field="categories")
    row.receiving_unit_id = choose_receiver(uow, row, ctx.default_intake_unit)
    row.status = Status.REQUESTED
    row.submitted_at = row.updated_at = ctx.now
    row.due_at = ctx.deadlines.due_at(Priority(row.priority), ctx.now)
    birth_date = records.birth_date_of(row)
    row.age_at_submission = age_on(birth_date, ctx.today) if birth_date else None
    record_event(row, ctx, action=Action.SUBMIT, from_status=Status.DRAFT)


def _require_draft_owner(row: Referral, side: Side, verb: str) -> None:
    if not policy.may_edit_or_delete(side):
        raise ActionNotAllowed(f"only the sending unit may have a referral {verb}")
    if row.status != Status.DRAFT:
        raise Conflict(f"only drafts can be {verb}", field="status")


def _merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge, null removes, anything else replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _optional(enum: type[Any], value: str | None) -> Any:
    return None if value is None else enum(value)


def _encode_cursor(row: Referral) -> str:
    raw = json.dumps([row.created_at.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, referral_id = json.loads(raw)
        return datetime.fromisoformat(created_at), uuid.UUID(referral_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Unprocessable("the cursor is not one this service issued", field="cursor") from exc
