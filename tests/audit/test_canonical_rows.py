"""The sealer's and verifier's direct encoder gives exactly ``chain.canonical_json``'s bytes.

``sealing.encode`` builds the canonical JSON of a stored event row without the general
normaliser (that was most of the verifier's time); any value the table could hold must
come out byte for byte as the general path makes it, or an honest chain would stop
verifying.  The rows here are the awkward ones: non-ASCII and escapes, optional fields
present and absent, disclosures, flags, and ``roles`` values only a tampered row has.
"""

from __future__ import annotations

import json
import random
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


# -- random rows: the fast path against the reference ------------------------------------------

_ALPHABET = 'aöÅ"\\/\t\n\x00\x1f\u2028\u00e9🦉 -:_.,{}[]'
_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]


def _random_text(rng: random.Random, empty: bool = True) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0 if empty else 1, 12)))


def _maybe(rng: random.Random, value: Any) -> Any:
    return None if rng.random() < 0.3 else value


def _random_row(rng: random.Random) -> Any:
    moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=rng.randrange(10**15) if rng.random() < 0.8 else rng.randrange(10**9) * 10**6
    )
    return row(
        id=uuid.UUID(int=rng.getrandbits(128)),
        recorded_at=moment.astimezone(rng.choice(_ZONES)),
        request_id=_maybe(rng, _random_text(rng)),
        actor_verified=rng.random() < 0.5,
        actor_issuer=_maybe(rng, _random_text(rng)),
        actor_subject=_maybe(rng, _random_text(rng)),
        client_id=_maybe(rng, _random_text(rng)),
        roles=[_random_text(rng) for _ in range(rng.randint(0, 3))],
        unit=_maybe(rng, rng.choice(["norrmalm", "södermalm", _random_text(rng)])),
        action=rng.choice(["referral:read", "referral:list", _random_text(rng)]),
        target_type=_maybe(rng, "referral"),
        target_id=_maybe(rng, _random_text(rng)),
        outcome=rng.choice(["allowed", "denied", _random_text(rng)]),
        http_status=rng.choice([200, 201, 403, 404, 409, 0, -1, 10**12]),
        purpose=_maybe(rng, _random_text(rng)),
        reason=_maybe(rng, _random_text(rng)),
    )


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_paths_agree_with_the_reference_on_random_rows(seed: int) -> None:
    """``encode`` (the sealer's) and ``encode_fields`` (the verifier's, from a row's values
    in ``ROLES_TEXT`` order) give ``chain.canonical_json``'s bytes for random rows."""
    rng = random.Random(seed)
    for _ in range(250):
        event = _random_row(rng)
        flag = rng.choice([None, "backdated", "future"])
        disclosed = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(rng.choice([0, 0, 1, 4]))]
        seq = rng.randint(1, 10**9)
        expected = chain.canonical_json({**sealing.hashed(event, flag, disclosed), "seq": seq})
        event.roles = json.dumps(event.roles, ensure_ascii=rng.random() < 0.5)
        fields = [getattr(event, name) for name in NAMES]
        assert sealing.encode(event, flag, disclosed, seq) == expected
        assert sealing.encode_fields(flag, disclosed, seq, *fields) == expected


def test_the_verifiers_fast_path_refuses_what_it_does_not_take() -> None:
    """Irregular values are not encoded by the fast path (the general path decides)."""
    regular = row(roles='["caseworker"]')
    fields = {name: getattr(regular, name) for name in NAMES}
    for name, value in [
        ("recorded_at", datetime(2026, 3, 14, 9, 0, 0)),
        ("actor_verified", 1),
        ("http_status", "200"),
        ("id", str(fields["id"])),
        ("unit", 7),
        ("roles", '{"admin": true}'),
        ("request_id", ["list"]),
    ]:
        changed = {**fields, name: value}
        with pytest.raises((TypeError, sealing._Irregular)):
            sealing.encode_fields(None, (), 1, *[changed[n] for n in NAMES])
