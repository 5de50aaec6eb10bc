"""The timeline of a referral: one event per change, readable by both sides."""

from __future__ import annotations

import uuid
from typing import Any

from referrals.db.models import Referral, TimelineEvent
from referrals.domain.codes import Disclosure
from referrals.services import records
from referrals.services.access import disclosure, open_referral, sealer_for
from referrals.services.context import Context
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Sealer


def record_event(
    row: Referral,
    ctx: Context,
    sealer: Sealer | None,
    *,
    action: str,
    from_status: str | None,
    from_unit: str | None = None,
    reason_code: str | None = None,
    reason_text: str | None = None,
    outcome_code: str | None = None,
    rule_id: str | None = None,
    ruleset_version: int | None = None,
    previous_assignee: str | None = None,
    assignee: str | None = None,
) -> None:
    """Append who did what, when, from which status to which."""
    event = TimelineEvent(
        id=uuid.uuid4(),
        position=len(row.events) + 1,
        at=ctx.now,
        action=action,
        actor=ctx.principal.actor,
        actor_unit=ctx.principal.unit,
        from_status=from_status,
        to_status=row.status,
        from_unit=from_unit if from_unit != row.receiving_unit_id else None,
        to_unit=row.receiving_unit_id,
        reason_code=reason_code,
        outcome_code=outcome_code,
        rule_id=rule_id,
        ruleset_version=ruleset_version,
        previous_assignee=previous_assignee,
        assignee=assignee,
    )
    if reason_text is not None and sealer is not None:
        records.write_event_text(event, sealer, reason_text)
    row.events.append(event)


def events(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> list[dict[str, Any]]:
    row, side = open_referral(uow, ctx, referral_id, read_only=True)
    sealer = sealer_for(ctx, row)
    # Before disclosure, only the caller's own unit's free text is shown.
    reader = ctx.principal.unit if disclosure(ctx, row, side) is Disclosure.DECISION else None
    items = [records.represent_event(e, sealer, side, reader_unit=reader) for e in row.events]
    # A read commits too: its audit event must be stored before any data leaves.
    uow.commit()
    return items
