"""``Idempotency-Key`` on create: a retried request (a phone on a bad connection at
Plattan) must not open the same referral twice.

Same caller, same key, same body: the referral the first request made is returned.
Same key with another body: refused, because the client has mixed up its keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from referrals.db.models import IdempotencyKey
from referrals.services import records
from referrals.services import referrals as referral_cases
from referrals.services.access import open_referral, sealer_for
from referrals.services.context import Context
from referrals.services.errors import Unprocessable
from referrals.services.uow import UnitOfWork


def create_once(
    uow: UnitOfWork, ctx: Context, body: Mapping[str, Any], *, submit: bool, key: str
) -> tuple[dict[str, Any], bool]:
    """Returns the referral and whether it was replayed rather than created."""
    fingerprint = _fingerprint(ctx, key, body, submit)
    replay = _replay(uow, ctx, key, fingerprint)
    if replay is not None:
        return replay, True
    try:
        view = referral_cases.create(
            uow, ctx, body, submit=submit, before_commit=_remember(ctx, key, fingerprint)
        )
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        uow.session.rollback()
        replay = _replay(uow, ctx, key, fingerprint)
        if replay is None:
            raise
        return replay, True
    return view, False


def _remember(ctx: Context, key: str, fingerprint: str) -> referral_cases.BeforeCommit:
    def remember(uow: UnitOfWork, referral_id: Any) -> None:
        uow.referrals.add_idempotency_key(
            IdempotencyKey(
                actor=ctx.principal.actor,
                key=key,
                fingerprint=fingerprint,
                referral_id=referral_id,
                created_at=ctx.now,
            )
        )

    return remember


def _replay(uow: UnitOfWork, ctx: Context, key: str, fingerprint: str) -> dict[str, Any] | None:
    record = uow.referrals.idempotency_key(ctx.principal.actor, key)
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
        )
    # Through the same door as any read: the caller's role or unit may have changed
    # since the first request, and a replay must not show what a GET would not.
    row, side = open_referral(uow, ctx, record.referral_id)
    view = records.represent(row, side, records.open_case(row, sealer_for(ctx, row)), now=ctx.now)
    uow.audit_target("referral", row.id)
    uow.commit()  # the replay is audited like any read
    return view


def _fingerprint(ctx: Context, key: str, body: Mapping[str, Any], submit: bool) -> str:
    # Keyed (HMAC under the index key), so a stored fingerprint cannot be confirmed by
    # guessing a small body; it covers the caller and key too, so equal bodies from
    # different callers never share a value.
    canonical = json.dumps(
        [ctx.principal.actor, key, submit, body], sort_keys=True, default=str, ensure_ascii=False
    )
    return ctx.vault.fingerprint(canonical)
