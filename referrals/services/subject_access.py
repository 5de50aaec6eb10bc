"""A data subject's access request (GDPR Art. 15): everything held about one person.

The privacy officer gives a personal number (in a body, never a URL); the blind index
finds the candidates across every unit, and each is confirmed by opening its own sealed
number, as search does.  For each referral the export holds:

- its personal fields and codes, as submitted and as they are now;
- its timeline (every transition, with its free-text reasons);
- its **shared** notes.  **Internal** notes are withheld and counted: they are a unit's
  working notes, which under offentlighets- och sekretesslagen (OSL 26 kap.) need a
  secrecy assessment by that unit before they are disclosed to anyone, the person
  included, and dataskyddslagen (2018:218) 5 kap. 1 § limits the right of access where
  secrecy applies.  The export says how many were withheld, so the officer can ask the
  unit for that assessment; SECURITY.md, *Data-subject access*;
- its recipients: the sending unit and each receiving unit, with when it received the
  referral and, after a redirect, until when;
- its access log: every allowed request that read, listed, found or changed it, with the
  time, the action, and the unit and role of who did it.  Not the staff member's own
  identity: the person is entitled to when and why their data was consulted, not to
  the names of employees (CJEU C-579/21, *Pankki S*); the auditors keep those.

A person with no data gets an empty export.  Erased referrals have lost their blind
index and their data key: nothing of the person is held, and none is found.  The export
is one audit event naming every referral it disclosed, committed before any of it
leaves the service.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from referrals.audit.actions import Outcome
from referrals.auth import policy
from referrals.crypto.aead import DecryptionError
from referrals.db.models import AuditEvent, AuditEventTarget, Referral
from referrals.domain.codes import Action, NoteVisibility
from referrals.domain.errors import InvalidPersonalNumber
from referrals.domain.personal_number import parse_personal_number
from referrals.services import records
from referrals.services.access import sealer_for
from referrals.services.context import Context
from referrals.services.errors import Forbidden
from referrals.services.uow import UnitOfWork

log = logging.getLogger(__name__)

RULE = (
    "Internal notes are the working notes of the unit that wrote them. They are "
    "withheld from this export and counted: before they are disclosed, that unit makes "
    "a secrecy assessment under OSL 26 kap.; dataskyddslagen 5 kap. 1 § limits the right "
    "of access where secrecy applies. Shared notes are included."
)
# Every step that handed the referral to a receiving unit.
RECEIVED = (Action.SUBMIT.value, Action.REDIRECT.value)


def export(uow: UnitOfWork, ctx: Context, personal_number: str) -> dict[str, Any]:
    if not policy.may_request_subject_access(ctx.principal):
        raise Forbidden("only the privacy officer exports a person's data")
    try:
        wanted = parse_personal_number(personal_number, ctx.today).normalized
    except InvalidPersonalNumber as exc:
        raise InvalidPersonalNumber(exc.message, field="personal_number") from None
    names = {unit.id: unit.name for unit in uow.units.all()}
    confirmed: list[tuple[Referral, records.Plain]] = []
    unreadable = 0
    for row in _candidates(uow, ctx.vault.personal_number_index(wanted)):
        try:
            plain = records.open_case(row, sealer_for(ctx, row))
        except DecryptionError:
            # A damaged candidate cannot be confirmed as this person's: counted, not shown.
            log.error("sealed data failed its integrity check", extra={"referral": str(row.id)})
            unreadable += 1
            continue
        if plain["personal_number"] == wanted:
            confirmed.append((row, plain))
    logs = access_logs(uow, [row.id for row, _ in confirmed])
    found = [_referral(ctx, row, plain, names, logs.get(row.id, [])) for row, plain in confirmed]
    uow.audit_disclosed(row.id for row, _ in confirmed)
    # The export's own event commits before any of it leaves the service.
    uow.commit()
    return {
        "generated_at": ctx.now,
        "personal_number": wanted,
        "referrals": found,
        "unreadable": unreadable,
        "internal_notes_rule": RULE,
    }


def _candidates(uow: UnitOfWork, index: str) -> Sequence[Referral]:
    """The referrals under one blind-index value, oldest first, timelines and notes loaded
    in two more queries (not two per referral)."""
    return uow.session.scalars(
        select(Referral)
        .where(Referral.personal_number_index == index)
        .options(selectinload(Referral.events), selectinload(Referral.notes))
        .order_by(Referral.created_at, Referral.id)
    ).all()


def _referral(
    ctx: Context,
    row: Referral,
    plain: records.Plain,
    names: dict[str, str],
    log: list[dict[str, Any]],
) -> dict[str, Any]:
    sealer = sealer_for(ctx, row)
    view = records.represent(row, None, plain, now=ctx.now)
    for internal in ("version", "assignee"):
        view.pop(internal)
    shared = [n for n in row.notes if n.visibility == NoteVisibility.SHARED]
    return {
        "referral": view,
        "timeline": [records.represent_event(e, sealer, None) for e in row.events],
        "notes": [records.represent_note(n, sealer) for n in shared],
        "internal_notes_withheld": len(row.notes) - len(shared),
        "recipients": recipients(row, names),
        "access_log": log,
    }


def recipients(row: Referral, names: dict[str, str]) -> list[dict[str, Any]]:
    """The sending unit, then each receiving unit from when it received the referral
    until a redirect took it away (``until`` None: it still has it)."""
    held = [
        {
            "unit": row.sending_unit_id,
            "unit_name": names.get(row.sending_unit_id),
            "role": "sender",
            "from": row.created_at,
            "until": None,
        }
    ]
    for event in row.events:
        if event.action not in RECEIVED or event.to_unit is None:
            continue
        if held[-1]["role"] == "receiver":
            held[-1]["until"] = event.at
        held.append(
            {
                "unit": event.to_unit,
                "unit_name": names.get(event.to_unit),
                "role": "receiver",
                "from": event.at,
                "until": None,
            }
        )
    return held


def access_logs(
    uow: UnitOfWork, referral_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Per referral, every allowed request that targeted or disclosed it, oldest first
    (the same events as its access log for auditors), in two queries for them all."""
    if not referral_ids:
        return {}
    allowed = AuditEvent.outcome == Outcome.ALLOWED
    concerned: dict[uuid.UUID, set[uuid.UUID]] = {}
    by_id = {str(r): r for r in referral_ids}
    targeted = uow.session.scalars(
        select(AuditEvent).where(
            allowed,
            AuditEvent.target_type == "referral",
            AuditEvent.target_id.in_(list(by_id)),
        )
    ).all()
    for event in targeted:
        concerned.setdefault(by_id[str(event.target_id)], set()).add(event.id)
    disclosing = uow.session.execute(
        select(AuditEventTarget.referral_id, AuditEvent)
        .join(AuditEvent, AuditEvent.id == AuditEventTarget.event_id)
        .where(allowed, AuditEventTarget.referral_id.in_(list(referral_ids)))
    ).all()
    events = {e.id: e for e in targeted} | {e.id: e for _, e in disclosing}
    for referral_id, event in disclosing:
        concerned.setdefault(referral_id, set()).add(event.id)
    return {
        referral_id: [
            _access(events[i])
            for i in sorted(ids, key=lambda i: (events[i].recorded_at, events[i].id))
        ]
        for referral_id, ids in concerned.items()
    }


def _access(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.recorded_at,
        "action": event.action,
        "unit": event.unit,
        "roles": list(event.roles),
        "purpose": event.purpose,
    }
