"""Notes on a referral.  Internal notes stay with their author's side (policy.py)."""

from __future__ import annotations

import uuid
from typing import Any

from referrals.auth import policy
from referrals.db.models import Note
from referrals.domain.codes import NoteVisibility, Side
from referrals.services import records
from referrals.services.access import open_referral
from referrals.services.context import Context
from referrals.services.uow import UnitOfWork


def add(
    uow: UnitOfWork,
    ctx: Context,
    referral_id: uuid.UUID,
    *,
    text: str,
    visibility: NoteVisibility,
) -> dict[str, Any]:
    row, side = open_referral(uow, ctx, referral_id)
    note = Note(
        id=uuid.uuid4(),
        created_at=ctx.now,
        author=ctx.principal.actor,
        author_unit=ctx.principal.unit,
        author_side=side,
        visibility=visibility,
    )
    records.write_note_text(note, text)
    row.notes.append(note)
    uow.session.flush()
    uow.commit()
    return records.represent_note(note)


def visible(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> list[dict[str, Any]]:
    row, side = open_referral(uow, ctx, referral_id)
    return [
        records.represent_note(n)
        for n in row.notes
        if policy.may_read_note(
            side,
            ctx.principal.unit,
            Side(n.author_side),
            n.author_unit,
            NoteVisibility(n.visibility),
        )
    ]
