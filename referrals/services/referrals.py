"""Referral use cases: create, read, list, edit and delete drafts, and every transition."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from referrals.auth import policy
from referrals.auth.principal import Role
from referrals.crypto.aead import DecryptionError
from referrals.db import legal_holds
from referrals.db.models import Referral
from referrals.db.repositories import ListFilter
from referrals.domain import lifecycle
from referrals.domain.codes import (
    OPEN_STATUSES,
    Action,
    Disclosure,
    EraseReason,
    LegalBasis,
    OutcomeCode,
    Priority,
    ReasonCode,
    Side,
    Status,
    UnitKind,
)
from referrals.domain.errors import ActionNotAllowed, InvalidPersonalNumber, MissingRequirement
from referrals.domain.personal_number import age_on, parse_personal_number
from referrals.domain.routing import Decision, Facts
from referrals.services import assignment, cursors, outbox, records, routing, staff
from referrals.services.access import (
    case_sealer,
    check_version,
    disclosure,
    open_referral,
    referring_unit,
    referring_unit_id,
    sealer_for,
)
from referrals.services.context import Context
from referrals.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
)
from referrals.services.new_rows import NewRows
from referrals.services.timeline import record_event
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Sealer

View = dict[str, Any]
log = logging.getLogger(__name__)


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
    new = NewRows(uow)
    row, plain = open_new(new, ctx, body, submit=submit)
    # One INSERT per table: the referral already at its submitted version, both timeline
    # events in one statement, the outbox message (services/new_rows.py).
    new.insert()
    if before_commit is not None:
        before_commit(uow, row.id)
    uow.audit_target("referral", row.id)
    # Before the commit: whatever this finds, the answer cannot fail after the change.
    duplicates = duplicates_of(uow, ctx, row, plain) if submit else None
    uow.audit_disclosed(d["id"] for d in duplicates or ())
    uow.commit()
    view = records.represent(row, Side.SENDER, plain, now=ctx.now)
    if duplicates is not None:
        view["possible_duplicates"] = duplicates
    return view


def open_new(
    new: NewRows,
    ctx: Context,
    body: Mapping[str, Any],
    *,
    submit: bool,
    decide: Callable[[Facts], Decision] | None = None,
) -> tuple[Referral, records.Plain]:
    """A new referral from a validated body, sealed, with its timeline (and submitted,
    routed and announced when ``submit``), held by ``new`` until it writes them.
    ``create`` and the bulk import (services/bulk_import.py) both make referrals here;
    the import passes a ``decide`` that reads the rule set once per batch."""
    uow = new.uow
    if submit and decide is None:
        # The units' kinds (the sender's, the routed receiver's) and the rule set come
        # from one statement, which is all this request reads before it writes.
        inputs = routing.routing_inputs(uow)
        decide = routing.decider(uow, inputs)
        sending_unit_id = referring_unit_id(ctx, inputs.kinds)
    else:
        sending_unit_id = referring_unit(uow, ctx).id
    row = Referral(
        id=uuid.uuid4(),
        status=Status.DRAFT,
        sending_unit_id=sending_unit_id,
        created_by=ctx.principal.actor,
        priority=Priority.NORMAL,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    sealer = ctx.vault.new_sealer(row)
    plain = records.write_case(row, body, today=ctx.today, sealer=sealer, vault=ctx.vault)
    routed = _route(uow, ctx, row, plain, decide) if submit else None
    # Creating is one change (version 1) and submitting another (version 2), exactly as
    # when a draft is submitted later, so the ETag a client holds means the same either
    # way: ``new.insert`` counts one version per timeline event.
    record_event(row, ctx, sealer, action="create", from_status=None)
    new.session.add(row)
    if routed is not None:
        _submit(uow, ctx, row, sealer, plain, routed)
    return row, plain


def get(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> View:
    row, side = open_referral(uow, ctx, referral_id, read_only=True)
    view = get_view(ctx, row, side)
    # A read commits too: its audit event must be stored before any data leaves.
    uow.commit()
    return view


def search(uow: UnitOfWork, ctx: Context, personal_number: str) -> list[View]:
    """Referrals the caller may see for this personal number: exact matches only.

    The blind index narrows the candidates (it may collide by design); decrypting the
    candidates' own numbers confirms each match.  A referral whose identity has not been
    disclosed to the caller is not a candidate: answering "yes, this one" would confirm
    the very identity the decision view withholds."""
    if not policy.may_work_with_cases(ctx.principal):
        raise Forbidden("this role has no access to case content")
    try:
        wanted = parse_personal_number(personal_number, ctx.today).normalized
    except InvalidPersonalNumber as exc:
        raise InvalidPersonalNumber(exc.message, field="personal_number") from None
    found = []
    for row in uow.referrals.with_personal_number_index(ctx.vault.personal_number_index(wanted)):
        side = policy.side_of(ctx.principal, row)
        if side is None or disclosure(ctx, row, side) is not Disclosure.FULL:
            continue
        try:
            plain = records.open_case(row, sealer_for(ctx, row))
        except DecryptionError:
            # A damaged candidate cannot be confirmed as a match: it is not one.
            log.error("sealed data failed its integrity check", extra={"referral": str(row.id)})
            continue
        if plain["personal_number"] == wanted:
            found.append(records.represent(row, side, plain, now=ctx.now))
    uow.audit_disclosed(view["id"] for view in found)
    uow.commit()
    return found


def duplicates_of(
    uow: UnitOfWork, ctx: Context, row: Referral, plain: records.Plain
) -> list[dict[str, Any]]:
    """Open referrals for the same person that the caller may see: id and status only."""
    number = plain["personal_number"]
    if row.personal_number_index is None or number is None:
        return []
    duplicates = []
    for other in uow.referrals.with_personal_number_index(row.personal_number_index):
        if other.id == row.id or other.status not in OPEN_STATUSES:
            continue
        if policy.side_of(ctx.principal, other) is None:
            continue
        try:
            other_number = records.open_case(other, sealer_for(ctx, other))["personal_number"]
        except DecryptionError:
            log.error("sealed data failed its integrity check", extra={"referral": str(other.id)})
            continue
        if other_number == number:
            duplicates.append({"id": other.id, "status": other.status})
    return duplicates


def erase(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID, reason: EraseReason) -> None:
    """Crypto-shred a referral: its personal data becomes unrecoverable, its skeleton stays."""
    if not policy.may_erase(ctx.principal):
        raise Forbidden("only administrators erase referrals")
    # Locked: a legal hold placed at the same moment waits for this, or this for it.
    row = uow.referrals.get(referral_id, for_update=True)
    if row is None:
        raise NotFound("no such referral")
    if row.erased_at is not None:
        raise Conflict("the referral is already erased", field="id")
    if legal_holds.active(uow.session, row.id) is not None:
        # A hold stops every erasure, by retention or by hand: release it first (audited).
        raise Conflict("the referral is under a legal hold", field="id")
    records.erase_case(row)
    uow.referrals.forget_idempotency_keys(row)
    row.erased_at = row.updated_at = ctx.now
    record_event(row, ctx, None, action="erase", from_status=row.status, reason_code=reason)
    uow.commit()


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
        receiving_unit=principal.unit if policy.works_for_receiving_unit(principal) else None,
        hidden_from_receiver=(Status.DRAFT,),
        status=status,
        priority=priority,
        overdue=overdue,
        now=ctx.now,
        pending_statuses=(Status.REQUESTED,),
    )
    staff.note_inbox_presence(uow, ctx)
    rows = uow.referrals.page(where, limit=limit + 1, after=cursors.decode(cursor))
    items = [_list_item(ctx, r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = cursors.encode(last.created_at, last.id) if last else None
    uow.audit_disclosed(r.id for r in rows[:limit])
    uow.commit()
    return Page(items=items, next_cursor=next_cursor)


def _list_item(ctx: Context, row: Referral) -> View:
    """One inbox line.  A referral whose sealed data fails its integrity check is listed
    as a skeleton marked ``integrity_error``: one damaged record must not hide the rest
    of a caseworker's inbox, and nothing of it is shown."""
    side = policy.side_of(ctx.principal, row)
    seen = disclosure(ctx, row, side) if side is not None else Disclosure.DECISION
    try:
        plain = records.open_case(row, case_sealer(ctx, row, seen))
    except DecryptionError:
        log.error("sealed data failed its integrity check", extra={"referral": str(row.id)})
        return {
            **records.represent(row, side, records.NO_FIELDS, now=ctx.now, disclosure=seen),
            "integrity_error": True,
        }
    return records.represent(row, side, plain, now=ctx.now, disclosure=seen)


def get_view(ctx: Context, row: Referral, side: Side, seen: Disclosure | None = None) -> View:
    """The referral as the caller sees it now: personal fields only when disclosed."""
    seen = seen or disclosure(ctx, row, side)
    plain = records.open_case(row, case_sealer(ctx, row, seen))
    return records.represent(row, side, plain, now=ctx.now, disclosure=seen)


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
    sealer = ctx.vault.sealer(row)
    merged = _merge_patch(records.case_input(row, records.open_case(row, sealer)), patch)
    plain = records.write_case(row, merged, today=ctx.today, sealer=sealer, vault=ctx.vault)
    row.updated_at = ctx.now
    uow.commit()
    return records.represent(row, side, plain, now=ctx.now)


def delete_draft(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> None:
    row, side = open_referral(uow, ctx, referral_id)
    _require_draft_owner(row, side, "deleted")
    if legal_holds.active(uow.session, row.id) is not None:
        # Deleting a draft erases it: a hold stops that too, as it stops every erasure.
        raise Conflict("the referral is under a legal hold", field="id")
    legal_holds.forget_released(uow.session, row.id)
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
    if row.erased_at is not None:
        raise Conflict("the referral has been erased", field="status")
    transition = lifecycle.plan(action, Status(row.status), side)
    reason = _optional(ReasonCode, inputs.get("reason_code"))
    outcome = _optional(OutcomeCode, inputs.get("outcome_code"))
    lifecycle.check_inputs(
        transition, reason_code=reason, outcome_code=outcome, unit=inputs.get("unit")
    )
    sealer = ctx.vault.sealer(row)
    # A redirecting unit loses the referral: it is answered with what it saw before.
    seen_before = disclosure(ctx, row, side)
    # Opened for every action, shown to no one here: a referral whose sealed fields fail
    # their integrity check refuses every change.
    plain = records.open_case(row, sealer)
    duplicates = None
    if action is Action.SUBMIT:
        _submit(uow, ctx, row, sealer, plain)
        duplicates = duplicates_of(uow, ctx, row, plain)
        uow.audit_disclosed(d["id"] for d in duplicates)
    else:
        _apply(uow, ctx, row, sealer, transition, inputs)
    uow.commit()
    view = get_view(ctx, row, side, seen_before if action is Action.REDIRECT else None)
    if duplicates is not None:
        view["possible_duplicates"] = duplicates
    return view


def _apply(
    uow: UnitOfWork,
    ctx: Context,
    row: Referral,
    sealer: Sealer,
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
        row.assignee = row.assignee_issuer = None
        # The new unit has seen nothing: it decides from the decision view too.
        row.identity_disclosed_to = None
    assignee = None
    if transition.action is Action.ACCEPT and inputs.get("assignee") is not None:
        # Resolved before the row changes: the lookup's query would flush a half-made change.
        unit_id = row.receiving_unit_id or ""
        assignee = staff.resolve(uow, ctx, unit_id, inputs["assignee"], field="assignee")
    if transition.target is not None:
        row.status = transition.target
    if transition.action is Action.ACCEPT:
        assignment.set_assignee(row, ctx, assignee)
        # Two-phase disclosure: accepting discloses identity and free text to the unit.
        row.identity_disclosed_to = row.receiving_unit_id
    # The reason code explains the current status; a transition without one clears it.
    row.reason_code = inputs["reason_code"] if transition.needs_reason else None
    if transition.needs_outcome:
        row.outcome_code = inputs["outcome_code"]
    row.updated_at = ctx.now
    record_event(
        row,
        ctx,
        sealer,
        action=transition.action,
        from_status=from_status,
        from_unit=from_unit,
        reason_code=inputs.get("reason_code"),
        reason_text=inputs.get("reason_text"),
        outcome_code=inputs.get("outcome_code"),
        assignee=assignee,
    )
    outbox.announce_transition(uow, ctx, row, transition.action)


def _submit(
    uow: UnitOfWork,
    ctx: Context,
    row: Referral,
    sealer: Sealer,
    plain: records.Plain,
    routed: tuple[Decision, int | None] | None = None,
) -> None:
    """draft -> requested: check what submission needs, route, set the deadline."""
    # Decide before changing the row: the queries deciding would flush a half-made change.
    decision, age = routed if routed is not None else _route(uow, ctx, row, plain)
    row.age_at_submission = age
    row.receiving_unit_id = decision.unit
    row.routing_rule_id = decision.rule_id
    row.routing_ruleset_version = decision.ruleset_version
    row.status = Status.REQUESTED
    row.submitted_at = row.updated_at = ctx.now
    row.due_at = ctx.deadlines.due_at(Priority(row.priority), ctx.now)
    record_event(
        row,
        ctx,
        sealer,
        action=Action.SUBMIT,
        from_status=Status.DRAFT,
        rule_id=decision.rule_id,
        ruleset_version=decision.ruleset_version,
    )
    outbox.announce_transition(uow, ctx, row, Action.SUBMIT)


def _route(
    uow: UnitOfWork,
    ctx: Context,
    row: Referral,
    plain: records.Plain,
    decide: Callable[[Facts], Decision] | None = None,
) -> tuple[Decision, int | None]:
    """What submitting needs checked, and where the referral goes: (decision, age)."""
    if row.status != Status.DRAFT:
        raise Conflict(f"cannot submit a referral that is {row.status}", field="status")
    if row.legal_basis is None:
        raise MissingRequirement("a legal basis is required to submit", field="legal_basis")
    if row.legal_basis == LegalBasis.CONSENT and row.consent_given_by is None:
        raise MissingRequirement("consent needs who gave it and when", field="consent")
    if not row.categories:
        raise MissingRequirement("at least one concern category is required", field="categories")
    birth_date = records.birth_date_of(plain)
    age = age_on(birth_date, ctx.today) if birth_date else None
    facts = routing.facts_of_row(row, age=age)
    return (decide(facts) if decide is not None else routing.decide_for(uow, facts)), age


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
