"""Notes on a referral.  Internal notes stay with their author's side (policy.py)."""

from __future__ import annotations

import uuid
from typing import Any

from referrals.auth import policy
from referrals.db.models import Note
from referrals.domain.codes import Disclosure, NoteVisibility, Side
from referrals.services import records
from referrals.services.access import disclosure, open_referral, sealer_for
from referrals.services.context import Context
from referrals.services.errors import Conflict
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
    sealer = sealer_for(ctx, row)
    if sealer is None:
        raise Conflict("the referral has been erased", field="status")
    note = Note(
        id=uuid.uuid4(),
        created_at=ctx.now,
        author=ctx.principal.actor,
        author_unit=ctx.principal.unit,
        author_side=side,
        visibility=visibility,
    )
    records.write_note_text(note, sealer, text)
    row.notes.append(note)
    # Touching the referral puts the note under its version check: an erase committed
    # meanwhile makes this a 409 instead of leaving a fresh ciphertext behind.
    row.updated_at = ctx.now
    uow.session.flush()
    uow.commit()
    return records.represent_note(note, sealer)


def visible(uow: UnitOfWork, ctx: Context, referral_id: uuid.UUID) -> list[dict[str, Any]]:
    row, side = open_referral(uow, ctx, referral_id, read_only=True)
    sealer = sealer_for(ctx, row)
    # Before disclosure, only notes of the caller's own unit are shown with their text.
    reader = ctx.principal.unit if disclosure(ctx, row, side) is Disclosure.DECISION else None
    notes = [
        records.represent_note(n, sealer, reader_unit=reader)
        for n in row.notes
        if policy.may_read_note(
            side,
            ctx.principal.unit,
            Side(n.author_side),
            n.author_unit,
            NoteVisibility(n.visibility),
        )
    ]
    # A read commits too: its audit event must be stored before any data leaves.
    uow.commit()
    return notes
