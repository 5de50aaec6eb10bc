"""Web sessions at rest: sealed, expiring, one short transaction per operation.

The whole session (tokens, sign-in state, a kept form) is one JSON document sealed
under the keyring's current KEK; the associated data names the table and the row's key
hash, so a blob copied into another session's row does not open.  A blob that does not
open (a retired KEK, tampering) is treated as no session: the person signs in again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from referrals.crypto import aead
from referrals.db.engine import Database
from referrals.db.models import WebSession
from referrals.db.web_sessions import WebSessionRepository
from referrals.services.vault import Vault


@dataclass(frozen=True)
class Stored:
    data: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime
    # Idle too long or past its lifetime: only what the caller carries over survives.
    expired: bool


def _context(key_hash: str) -> aead.FieldContext:
    return aead.FieldContext("web_sessions", key_hash, "data")


def load(
    database: Database, vault: Vault, key_hash: str, *, now: datetime, idle: timedelta
) -> Stored | None:
    with database.sessions() as session:
        row = WebSessionRepository(session).get(key_hash)
        if row is None:
            return None
        try:
            data = json.loads(vault.open_secret(_context(key_hash), row.data))
        except (aead.DecryptionError, ValueError):
            return None
        expired = row.expires_at <= now or row.last_seen_at + idle <= now
        return Stored(
            data=data, created_at=row.created_at, last_seen_at=row.last_seen_at, expired=expired
        )


def store(
    database: Database,
    vault: Vault,
    key_hash: str,
    data: dict[str, Any],
    *,
    now: datetime,
    idle: timedelta,
    lifetime: timedelta,
) -> None:
    blob, kek_id = vault.seal_secret(_context(key_hash), json.dumps(data, separators=(",", ":")))
    with database.sessions() as session:
        repository = WebSessionRepository(session)
        row = repository.get(key_hash)
        if row is None:
            # New sessions are rare (sign-in, a first form): a good moment to sweep.
            repository.delete_stale(now, now - idle)
            repository.add(
                WebSession(
                    id=key_hash,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + lifetime,
                    data=blob,
                    kek_id=kek_id,
                )
            )
        else:
            row.data, row.kek_id, row.last_seen_at = blob, kek_id, now
        session.commit()


def delete(database: Database, key_hash: str) -> None:
    with database.sessions() as session:
        WebSessionRepository(session).delete(key_hash)
        session.commit()
