"""Opaque keyset-pagination cursors: the (timestamp, id) of the last item of a page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from referrals.services.errors import Unprocessable


def encode(at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(item_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Unprocessable("the cursor is not one this service issued", field="cursor") from exc
