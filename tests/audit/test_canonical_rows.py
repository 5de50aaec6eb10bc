"""The sealer's and verifier's direct encoder gives exactly ``chain.canonical_json``'s bytes.

``sealing.encode`` builds the canonical JSON of a stored event row without the general
normaliser (that was most of the verifier's time); any value the table could hold must
come out byte for byte as the general path makes it, or an honest chain would stop
verifying.  The rows here are the awkward ones: non-ASCII and escapes, optional fields
present and absent, disclosures, flags, and ``roles`` values only a tampered row has.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from referrals.audit import chain, sealing

NAMES = [c.name for c in sealing.ROLES_TEXT]


def row(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "id": uuid.UUID("6f1c7a52-3d4e-4b7a-9a51-0c2b8e9d1f00"),
        "recorded_at": datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC),
        "request_id": "req-1",
        "actor_verified": True,
        "actor_issuer": "https://idp.example",
        "actor_subject": "handläggare-ö",
        "client_id": None,
        "roles": ["caseworker", "auditor"],
        "unit": "norrmalm",
        "action": "referral:read",
        "target_type": "referral",
        "target_id": "0a0b",
        "outcome": "allowed",
        "http_status": 200,
        "purpose": None,
        "reason": None,
    }
    values.update(overrides)
    assert set(values) == set(NAMES)
    # The encoder reads a row's columns by name, as a Row offers them.
    return SimpleNamespace(**values)


CASES = {
    "plain": {},
    "escapes and non-ASCII": {
        "actor_subject": 'quote " backslash \\ tab \t nul-free \u2028 emoji 🦉 ä',
        "request_id": "\x01control",
    },
    "reason": {"reason": "CHG-1042"},
    "purpose": {"purpose": "acute_risk"},
    "unverified": {"actor_verified": False, "client_id": "os:alice"},
    "no roles": {"roles": []},
    "other zone": {
        "recorded_at": datetime(2026, 3, 14, 11, 26, 53, 5, tzinfo=timezone(timedelta(hours=2)))
    },
    "whole second": {"recorded_at": datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)},
    "nulls": {"unit": None, "target_type": None, "target_id": None, "actor_issuer": None},
    # Only a tampered row holds these; the general path decides them.
    "roles not a list": {"roles": {"admin": True}},
    "roles with a number": {"roles": ["admin", 7]},
    "roles a string": {"roles": "admin"},
}


@pytest.mark.parametrize("stored", ["json text", "json text, spaced"])
@pytest.mark.parametrize("flag", [None, "backdated"])
@pytest.mark.parametrize("disclosed", [(), (uuid.UUID(int=5), uuid.UUID(int=3))])
@pytest.mark.parametrize("case", CASES)
def test_the_direct_encoding_is_the_canonical_one(
    case: str, disclosed: tuple[uuid.UUID, ...], flag: str | None, stored: str
) -> None:
    """``roles`` as the sealer and the verifier select it (``ROLES_TEXT``: the stored JSON
    text, in whatever spacing it was written)."""
    event = row(**CASES[case])
    expected = chain.canonical_json({**sealing.hashed(event, flag, disclosed), "seq": 41})
    separators = (",", ":") if stored == "json text" else (", ", ": ")
    event.roles = json.dumps(event.roles, separators=separators, ensure_ascii=False)
    assert sealing.encode(event, flag, disclosed, 41) == expected
    assert sealing.encode(event, flag, disclosed, 41) == expected  # the memo gives the same


def test_a_row_that_cannot_be_hashed_is_reported_not_raised() -> None:
    event = row(roles="[NaN]")
    assert sealing.encode(event, None, (), 1) == chain.UNHASHABLE
