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
from referrals.audit.actions import AuditAction, Outcome

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


# -- the verifier's batches on PostgreSQL: whole columns at a time ------------------------------

_ACTIONS = [str(action) for action in AuditAction]
_OUTCOMES = [str(outcome) for outcome in Outcome]
_LONG = "långt värde \u2028 " * 400  # a few kilobytes, non-ASCII


def _unusual_row(rng: random.Random, index: int) -> Any:
    """A random row, and every action and outcome in turn, with long and odd text."""
    event = _random_row(rng)
    event.action = _ACTIONS[index % len(_ACTIONS)]
    event.outcome = _OUTCOMES[index % len(_OUTCOMES)]
    if rng.random() < 0.1:
        event.actor_subject = _LONG
    if rng.random() < 0.1:
        event.target_id = _LONG[: rng.randint(0, 64)]
    return event


def _server_row(
    event: Any, seq: int, stored: bytes, flag: str | None, disclosed: list[uuid.UUID]
) -> tuple[Any, ...]:
    """The row as ``sealing.SERVER_TEXT`` reads it: the id and the UTC time as the server's
    text, ``roles`` as stored JSON, the disclosed referrals as their ids' text (any order)."""
    moment = event.recorded_at.astimezone(UTC).replace(tzinfo=None)
    values = {
        **{name: getattr(event, name) for name in NAMES},
        "id": str(event.id),
        "recorded_at": moment.isoformat(timespec="microseconds"),
        "roles": json.dumps(event.roles, ensure_ascii=False),
    }
    names = [str(referral) for referral in disclosed] or None
    return (seq, stored, flag, *[values[name] for name in NAMES], names)


def _sealed_batch(seed: int, count: int) -> tuple[list[tuple[Any, ...]], list[bytes]]:
    """``count`` random rows at seq 1.. and the chain hash after each, by the reference
    (``chain.canonical_json`` of ``sealing.hashed``)."""
    rng = random.Random(seed)
    rows, heads, previous = [], [], chain.GENESIS
    for seq in range(1, count + 1):
        event = _unusual_row(rng, seq)
        flag = rng.choice([None, None, "backdated", "future"])
        disclosed = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(rng.choice([0, 0, 1, 5]))]
        previous = chain.link(previous, {**sealing.hashed(event, flag, disclosed), "seq": seq})
        rows.append(_server_row(event, seq, previous, flag, rng.sample(disclosed, len(disclosed))))
        heads.append(previous)
    return rows, heads


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_is_verified_to_the_references_hash(seed: int) -> None:
    """``chain_batch`` (the verifier's batches) recomputes exactly the reference's hashes:
    the whole batch, and the same rows split at any point."""
    rows, heads = _sealed_batch(seed, 300)
    assert sealing.chain_batch(rows, 1, chain.GENESIS) == heads[-1]
    cut = random.Random(seed).randint(1, 299)
    assert sealing.chain_batch(rows[:cut], 1, chain.GENESIS) == heads[cut - 1]
    assert sealing.chain_batch(rows[cut:], cut + 1, heads[cut - 1]) == heads[-1]


_COLUMNS = ["seq", "hash", "flag", *NAMES, "disclosed"]


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("flag", ("backdated", None)),
        ("id", (str(uuid.UUID(int=7)), str(uuid.UUID(int=8)))),
        ("recorded_at", ("2026-03-14T09:26:53.589794", "2026-03-14T09:26:53.589795")),
        ("request_id", ("req-2", None)),
        ("actor_verified", (False, True)),
        ("actor_issuer", (None, "https://idp.example")),
        ("actor_subject", ("handläggare-ä", None)),
        ("client_id", ("os:mallory", None)),
        ("roles", ('["auditor"]', "[]")),
        ("unit", ("sodermalm", None)),
        ("action", ("referral:erase", "referral:read")),
        ("target_type", ("unit", None)),
        ("target_id", ("0a0c", None)),
        ("outcome", ("denied", "allowed")),
        ("http_status", (201, 200)),
        ("purpose", ("acute_risk", None)),
        ("reason", ("CHG-1", None)),
        ("disclosed", ([str(uuid.UUID(int=1))], None)),
        ("hash", (bytes(32), bytes(range(32)))),
        ("seq", (6, 4)),
    ],
)
def test_one_changed_value_fails_the_batch(column: str, values: tuple[Any, Any]) -> None:
    """A change to any column of one row (or its position, or its stored hash) leaves the
    batch unverified: the row-by-row path then names it."""
    rows, heads = _sealed_batch(99, 10)
    index = _COLUMNS.index(column)
    changed = list(rows[4])
    changed[index] = values[0] if changed[index] != values[0] else values[1]
    rows[4] = tuple(changed)
    assert sealing.chain_batch(rows, 1, chain.GENESIS) is None
    assert sealing.chain_batch(rows[:4], 1, chain.GENESIS) == heads[3]  # the rows before it


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("recorded_at", None),  # the server's NULL: a time outside years 1 to 9999
        ("actor_verified", 1),
        ("http_status", True),
        ("http_status", "200"),
        ("http_status", 200.0),
        ("unit", 7),
        ("request_id", b"bytes"),
        ("roles", '{"admin": true}'),
        ("roles", '["admin", 7]'),
        ("roles", None),
        ("id", None),
        ("disclosed", [7]),
    ],
)
def test_a_value_the_batch_does_not_take_leaves_it_to_the_row_by_row_path(
    column: str, value: Any
) -> None:
    """Irregular values (only a changed row holds them) are not encoded here at all: the
    batch is left to the row-by-row path, which decides, and nothing is raised."""
    rows, _ = _sealed_batch(7, 10)
    changed = list(rows[4])
    changed[_COLUMNS.index(column)] = value
    rows[4] = tuple(changed)
    assert sealing.chain_batch(rows, 1, chain.GENESIS) is None


def test_nulls_in_the_text_columns_are_encoded_as_the_reference_does() -> None:
    """NULL where the table allows it (and where only a changed row has it) is ``null``."""
    rng = random.Random(3)
    previous, rows = chain.GENESIS, []
    for seq in range(1, 41):
        event = _unusual_row(rng, seq)
        for name in ("request_id", "actor_issuer", "actor_subject", "client_id", "unit"):
            if rng.random() < 0.5:
                setattr(event, name, None)
        event.target_type = event.target_id = event.purpose = event.reason = None
        previous = chain.link(previous, {**sealing.hashed(event, None, ()), "seq": seq})
        rows.append(_server_row(event, seq, previous, None, []))
    assert sealing.chain_batch(rows, 1, chain.GENESIS) == previous
