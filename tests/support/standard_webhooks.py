"""An independent verifier of Standard Webhooks signatures (https://www.standardwebhooks.com/).

Written from the specification rather than shared with the sender in ``referrals`` on
purpose: a verifier that reuses the sender's code would agree with any bug in it.  What
proves interoperability is that this module reproduces the spec's published test vector
(see tests/webhooks/test_support.py) and then accepts what the application sends.

Deliberately strict where the spec is: the secret must be ``whsec_`` + base64, the
timestamp must be an integer of seconds, and only ``v1`` (HMAC-SHA256) entries count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class WebhookVerificationError(Exception):
    """The request is not a validly signed, fresh Standard Webhooks delivery."""


def _key(secret: str) -> bytes:
    """Decode a ``whsec_`` secret; a malformed one is a test/config bug, not a bad message."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"Standard Webhooks secrets start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret after 'whsec_' is not valid base64") from exc
    if not key:
        raise ValueError("the secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """HMAC-SHA256 over ``{id}.{timestamp}.{body}``, the body as the exact bytes sent."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature entry, for tests that need a known-good or foreign one."""
    digest = _digest(_key(secret), msg_id, str(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def _timestamp(raw: str, now: float, tolerance: int) -> None:
    """Reject non-integer timestamps and ones outside the replay window, either direction."""
    if not (raw.isascii() and raw.isdigit()):
        raise WebhookVerificationError(f"webhook-timestamp {raw!r} is not integer seconds")
    sent = int(raw)
    if sent < now - tolerance:
        raise WebhookVerificationError(f"webhook-timestamp {sent} is too old (now {now:.0f})")
    if sent > now + tolerance:
        raise WebhookVerificationError(f"webhook-timestamp {sent} is too new (now {now:.0f})")


def _v1_signatures(header: str) -> list[bytes]:
    """Decoded ``v1`` entries; other versions and malformed entries are not ours to judge."""
    found = []
    for entry in header.split(" "):
        version, sep, encoded = entry.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Any:
    """Check a delivery as a spec-following consumer would; returns the parsed JSON body.

    ``headers`` may use any case.  ``now`` (seconds since the epoch) defaults to the wall
    clock; pin it to check a recorded or published delivery.
    """
    key = _key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in REQUIRED_HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    msg_id = lowered["webhook-id"]
    raw_timestamp = lowered["webhook-timestamp"]
    _timestamp(raw_timestamp, time.time() if now is None else now, tolerance)

    expected = _digest(key, msg_id, raw_timestamp, body)
    candidates = _v1_signatures(lowered["webhook-signature"])
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookVerificationError(
            f"no matching v1 signature among {len(candidates)} v1 entr"
            f"{'y' if len(candidates) == 1 else 'ies'}"
        )
    return json.loads(body)
