"""What the security review wrote into audit_events with the app role's credentials."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert

from referrals.db.models import AuditEvent
from tests.support.clock import FakeClock


def forge_back_dated_event(connection: Connection, clock: FakeClock) -> uuid.UUID:
    """What the review did with the app role's credentials: any actor, verified, 30 days
    in the past."""
    event_id = uuid.uuid4()
    connection.execute(insert(AuditEvent).values(**forged_event(event_id, clock)))
    return event_id


def forged_event(event_id: uuid.UUID, clock: FakeClock) -> dict[str, Any]:
    return {
        "id": event_id,
        "recorded_at": clock() - timedelta(days=30),
        "request_id": "forged",
        "actor_verified": True,
        "actor_issuer": "https://idp.example",
        "actor_subject": "someone-else",
        "roles": ["caseworker"],
        "action": "referral:read",
        "target_type": "referral",
        "target_id": str(uuid.uuid4()),
        "outcome": "allowed",
        "http_status": 200,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def tampered(token: str, **claims: Any) -> str:
    """The token with its payload changed and its (now wrong) signature kept."""
    header, payload, signature = token.split(".")
    changed = {**json.loads(_unb64(payload)), **claims}
    return ".".join([header, _b64(json.dumps(changed).encode()), signature])
