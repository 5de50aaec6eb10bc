"""The audit hash chain and its signed checkpoints: tampering is named at the exact position."""

from __future__ import annotations

import hashlib
import math
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from referrals.audit.chain import (
    GENESIS,
    Checkpoint,
    Finding,
    SealedEvent,
    canonical_json,
    checkpoint_payload,
    create_signing_key_file,
    generate_signing_key,
    link,
    load_signing_key,
    public_key_id,
    seal,
    sign_checkpoint,
    verify_chain,
    verify_checkpoints,
)

LENGTH = 50
CHECKPOINTS_AT = (15, 30, 45)
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


class Action(StrEnum):
    READ = "referral:read"
    ACCEPT = "referral:accept"
    SEARCH = "audit:search"


# -- helpers ----------------------------------------------------------------------------------


def body(n: int) -> dict[str, Any]:
    """An audit event body: no personal data, like the real ones."""
    return {
        "actor": {
            "issuer": "https://idp.example",
            "subject": f"user-{n % 7}",
            "client_id": "referrals-web",
            "roles": ("caseworker",) if n % 3 else ("caseworker", "auditor"),
            "unit": f"unit-{n % 2}",
        },
        "action": list(Action)[n % 3],
        "target": {"type": "referral", "id": uuid.UUID(int=1000 + n)},
        "outcome": ("allowed", "denied", "error")[n % 3],
        "status": (200, 404, 503)[n % 3],
        "request_id": uuid.UUID(int=n),
        "at": T0 + timedelta(seconds=n, microseconds=n),
    }


def build(bodies: Sequence[Mapping[str, Any]], first_seq: int = 1) -> list[SealedEvent]:
    """What the sealer does: seal each body after the previous chain hash."""
    events: list[SealedEvent] = []
    previous = GENESIS
    for offset, item in enumerate(bodies):
        event = seal(previous, first_seq + offset, item)
        events.append(event)
        previous = event.hash
    return events


def rehash(events: Sequence[SealedEvent]) -> list[SealedEvent]:
    """What an attacker with write access but without the signing key can do: renumber
    every event from 1 and recompute every hash."""
    return build([event.body for event in events])


def heads(events: Sequence[SealedEvent]) -> dict[int, bytes]:
    """The chain hash recomputed at each position (what the verifier hands to
    ``verify_checkpoints``)."""
    recomputed: dict[int, bytes] = {}
    previous = GENESIS
    for event in events:
        previous = link(previous, {**event.body, "seq": event.seq})
        recomputed[event.seq] = previous
    return recomputed


def checkpoints(
    key: Ed25519PrivateKey, events: Sequence[SealedEvent], at: Sequence[int] = CHECKPOINTS_AT
) -> list[Checkpoint]:
    by_seq = {event.seq: event.hash for event in events}
    key_id = public_key_id(key.public_key())
    signed: list[Checkpoint] = []
    previous: bytes | None = None
    for number, seq in enumerate(at):
        checkpoint = sign_checkpoint(
            key, key_id, seq, by_seq[seq], T0 + timedelta(minutes=number), previous
        )
        signed.append(checkpoint)
        previous = checkpoint.signature
    return signed


def trusted(key: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {public_key_id(key.public_key()): key.public_key()}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture
def chain() -> list[SealedEvent]:
    return build([body(n) for n in range(1, LENGTH + 1)])


@pytest.fixture
def signed(key: Ed25519PrivateKey, chain: list[SealedEvent]) -> list[Checkpoint]:
    """Checkpoints at 15, 30 and 45, written before any tampering."""
    return checkpoints(key, chain)


# -- the untouched chain ----------------------------------------------------------------------


def test_an_untouched_chain_and_its_checkpoints_verify(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    assert [event.seq for event in chain] == list(range(1, LENGTH + 1))
    assert verify_chain(chain) is None
    assert verify_checkpoints(signed, heads(chain), trusted(key)) is None


def test_each_hash_links_the_previous_hash_and_the_event_with_its_seq(
    chain: list[SealedEvent],
) -> None:
    first, second = chain[0], chain[1]
    assert first.hash == hashlib.sha256(GENESIS + canonical_json({**first.body, "seq": 1})).digest()
    assert second.hash == link(first.hash, {**second.body, "seq": 2})
    assert "seq" not in first.body
    assert "hash" not in first.body


def test_an_empty_chain_verifies() -> None:
    assert verify_chain([]) is None
    assert verify_checkpoints([], {}, {}) is None


def test_verification_can_resume_from_a_trusted_position(chain: list[SealedEvent]) -> None:
    assert verify_chain(chain[20:], start_seq=21, start_hash=chain[19].hash) is None
    assert verify_chain(chain[20:], start_seq=21, start_hash=chain[18].hash) == Finding(
        21, "altered", "the event does not match its chain hash"
    )
    # Resuming at the wrong place: the first expected event is absent.
    finding = verify_chain(chain[21:], start_seq=21, start_hash=chain[19].hash)
    assert finding is not None
    assert (finding.seq, finding.problem) == (21, "missing")


# -- tampering with events --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome", "allowed"),  # event 17 was "error"
        ("status", 200),
        ("action", "referral:search"),
        ("request_id", uuid.UUID(int=999)),
        ("at", T0 + timedelta(seconds=17, microseconds=18)),  # one microsecond later
        ("actor", {**body(17)["actor"], "subject": "someone-else"}),
        ("target", {"type": "referral", "id": uuid.UUID(int=1)}),
        ("purpose", "added afterwards"),
    ],
)
def test_changing_one_field_of_event_17_is_altered_at_17(
    chain: list[SealedEvent], field: str, value: object
) -> None:
    tampered = list(chain)
    assert canonical_json({field: value}) != canonical_json({field: chain[16].body.get(field)})
    tampered[16] = replace(chain[16], body={**chain[16].body, field: value})
    assert verify_chain(tampered) == Finding(
        17, "altered", "the event does not match its chain hash"
    )


def test_removing_a_field_of_event_17_is_altered_at_17(chain: list[SealedEvent]) -> None:
    tampered = list(chain)
    tampered[16] = replace(
        chain[16], body={k: v for k, v in chain[16].body.items() if k != "outcome"}
    )
    finding = verify_chain(tampered)
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "altered")


def test_changing_a_stored_hash_is_altered_there(chain: list[SealedEvent]) -> None:
    tampered = list(chain)
    tampered[16] = replace(chain[16], hash=bytes(32))
    finding = verify_chain(tampered)
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "altered")


def test_changing_event_17_and_rehashing_it_alone_is_altered_at_18(
    chain: list[SealedEvent],
) -> None:
    """An attacker who recomputes only the changed event's hash breaks the next link."""
    tampered = list(chain)
    forged_body = {**chain[16].body, "outcome": "allowed"}
    tampered[16] = seal(chain[15].hash, 17, forged_body)
    finding = verify_chain(tampered)
    assert finding is not None
    assert (finding.seq, finding.problem) == (18, "altered")


def test_a_seq_field_smuggled_into_a_body_is_altered(chain: list[SealedEvent]) -> None:
    """``{**body, "seq": seq}`` would hide a body's own seq field; it is reported instead."""
    tampered = list(chain)
    tampered[16] = replace(chain[16], body={**chain[16].body, "seq": 99})
    finding = verify_chain(tampered)
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "altered")
    with pytest.raises(ValueError, match="seq"):
        seal(GENESIS, 1, {"seq": 1})


def test_a_body_that_cannot_be_hashed_is_altered(chain: list[SealedEvent]) -> None:
    tampered = list(chain)
    tampered[16] = replace(chain[16], body={**chain[16].body, "at": b"\x00"})
    finding = verify_chain(tampered)
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "altered")


def test_deleting_event_17_is_missing_at_17(chain: list[SealedEvent]) -> None:
    tampered = chain[:16] + chain[17:]
    assert verify_chain(tampered) == Finding(17, "missing", "no event at seq 17")


def test_deleting_events_17_to_19_is_missing_at_17(chain: list[SealedEvent]) -> None:
    tampered = chain[:16] + chain[19:]
    assert verify_chain(tampered) == Finding(17, "missing", "no event at seq 17..19")


def test_deleting_the_first_event_is_missing_at_1(chain: list[SealedEvent]) -> None:
    assert verify_chain(chain[1:]) == Finding(1, "missing", "no event at seq 1")


def test_a_second_event_at_17_is_inserted_at_17(chain: list[SealedEvent]) -> None:
    """Ordered by seq, two rows claiming 17 are adjacent; whichever comes first verifies
    (the forger sealed his after hash_16), and the second one is named."""
    forged = seal(chain[15].hash, 17, {**body(17), "outcome": "allowed"})
    for tampered in ([*chain[:16], forged, *chain[16:]], [*chain[:17], forged, *chain[17:]]):
        assert verify_chain(tampered) == Finding(17, "inserted", "a second event claims seq 17")


def test_an_inserted_event_with_the_rest_renumbered_but_not_rehashed_is_altered_at_17(
    chain: list[SealedEvent],
) -> None:
    forged = SealedEvent(seq=17, body=body(99), hash=bytes(32))
    renumbered = [replace(event, seq=event.seq + 1) for event in chain[16:]]
    finding = verify_chain([*chain[:16], forged, *renumbered])
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "altered")


def test_an_inserted_event_with_the_chain_recomputed_is_caught_by_the_checkpoint_at_30(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    """An attacker without the signing key inserts a forged event between 16 and 17,
    renumbers the rest and recomputes every hash.  The chain alone is consistent again;
    the checkpoint at 30, signed before the tampering, is not."""
    forged_body = {**body(16), "request_id": uuid.UUID(int=4242), "outcome": "allowed"}
    tampered = rehash([*chain[:16], SealedEvent(0, forged_body, b""), *chain[16:]])
    assert len(tampered) == LENGTH + 1
    assert tampered[16].body == forged_body
    assert tampered[16].seq == 17

    assert verify_chain(tampered) is None  # invisible to the chain alone
    recomputed = heads(tampered)
    assert recomputed[15] == heads(chain)[15]  # the checkpoint at 15 still holds
    assert verify_checkpoints(signed, recomputed, trusted(key)) == Finding(
        30, "bad-checkpoint", "the chain head does not match the signed head"
    )


def test_a_deleted_event_with_the_chain_recomputed_is_caught_by_the_checkpoint_at_30(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    tampered = rehash(chain[:16] + chain[17:])
    assert verify_chain(tampered) is None
    finding = verify_checkpoints(signed, heads(tampered), trusted(key))
    assert finding is not None
    assert (finding.seq, finding.problem) == (30, "bad-checkpoint")


def test_swapping_events_17_and_18_is_altered_at_17(chain: list[SealedEvent]) -> None:
    """Swapping two rows' seq values (each row keeps its own hash) or swapping their
    contents in place both show up as ``altered`` at 17, not ``reordered``: the verifier
    reads events ordered by seq, so the numbers are still in order -- but the body now at
    17 was hashed for position 18, after hash_17, so it no longer matches."""
    rows_swapped = [
        *chain[:16],
        replace(chain[17], seq=17),
        replace(chain[16], seq=18),
        *chain[18:],
    ]
    bodies_swapped = [
        *chain[:16],
        replace(chain[16], body=chain[17].body),
        replace(chain[17], body=chain[16].body),
        *chain[18:],
    ]
    for tampered in (rows_swapped, bodies_swapped):
        assert verify_chain(tampered) == Finding(
            17, "altered", "the event does not match its chain hash"
        )


def test_events_out_of_seq_order_are_reordered_or_missing(chain: list[SealedEvent]) -> None:
    """Only if the caller does not order by seq: a lower seq after a higher one is
    ``reordered``; a jump ahead is reported first as the gap it leaves (``missing``)."""
    assert verify_chain([*chain[:18], chain[15]]) == Finding(
        16, "reordered", "seq 16 follows seq 18"
    )
    finding = verify_chain([*chain[:16], chain[17], chain[16], *chain[18:]])
    assert finding is not None
    assert (finding.seq, finding.problem) == (17, "missing")


def test_a_truncated_tail_is_caught_by_the_checkpoint_beyond_the_chain(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    tampered = chain[:40]
    assert verify_chain(tampered) is None  # invisible to the chain alone
    assert verify_checkpoints(signed, heads(tampered), trusted(key)) == Finding(
        45, "checkpoint-beyond-chain", "the chain does not reach seq 45"
    )


# -- tampering with checkpoints ---------------------------------------------------------------


def test_a_checkpoint_signed_with_another_key_is_bad(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    other = generate_signing_key()
    recomputed = heads(chain)
    # Under the other key's own id: an unknown key.
    foreign = checkpoints(other, chain)
    assert verify_checkpoints(foreign, recomputed, trusted(key)) == Finding(
        15, "bad-checkpoint", "signed with an unknown key id"
    )
    # Claiming the trusted key's id: the signature does not verify.
    impostor = sign_checkpoint(
        other, signed[1].key_id, 30, signed[1].head, signed[1].created_at, signed[0].signature
    )
    assert verify_checkpoints(
        [signed[0], impostor, signed[2]], recomputed, trusted(key)
    ) == Finding(30, "bad-checkpoint", "the signature does not verify")


def test_an_attacker_cannot_re_sign_the_checkpoint_after_rewriting_the_chain(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    tampered = rehash([*chain[:16], SealedEvent(0, body(99), b""), *chain[16:]])
    other = generate_signing_key()
    forged = checkpoints(other, tampered)
    for key_id in (forged[1].key_id, signed[1].key_id):
        resigned = [
            signed[0],
            replace(forged[1], key_id=key_id, previous=signed[0].signature),
            signed[2],
        ]
        finding = verify_checkpoints(resigned, heads(tampered), trusted(key))
        assert finding is not None
        assert (finding.seq, finding.problem) == (30, "bad-checkpoint")


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 31},
        {"head": bytes(32)},
        {"created_at": T0 + timedelta(days=1)},
        {"previous": None},
        {"signature": bytes(64)},
    ],
)
def test_a_changed_checkpoint_field_breaks_its_signature(
    key: Ed25519PrivateKey,
    chain: list[SealedEvent],
    signed: list[Checkpoint],
    change: dict[str, Any],
) -> None:
    altered = [signed[0], replace(signed[1], **change), signed[2]]
    finding = verify_checkpoints(altered, heads(chain), trusted(key))
    assert finding == Finding(altered[1].seq, "bad-checkpoint", "the signature does not verify")


def test_an_older_checkpoint_replayed_after_a_newer_one_is_bad(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    recomputed = heads(chain)
    replayed = [*signed, signed[0]]
    assert verify_checkpoints(replayed, recomputed, trusted(key)) == Finding(
        15, "bad-checkpoint", "checkpoint at seq 15 follows the checkpoint at seq 45"
    )
    # Replayed in place of the newest one: its seq goes backwards as well.
    finding = verify_checkpoints([signed[0], signed[1], signed[0]], recomputed, trusted(key))
    assert finding is not None
    assert (finding.seq, finding.problem) == (15, "bad-checkpoint")
    # A genuinely signed checkpoint slipped in between two others: the next one does not
    # chain to it.
    slipped = sign_checkpoint(
        key, signed[0].key_id, 20, recomputed[20], T0 + timedelta(seconds=30), signed[0].signature
    )
    assert verify_checkpoints([signed[0], slipped, signed[1]], recomputed, trusted(key)) == Finding(
        30, "bad-checkpoint", "does not chain to the preceding checkpoint at seq 20"
    )


def test_a_checkpoint_removed_from_the_middle_or_the_start_is_detected(
    key: Ed25519PrivateKey, chain: list[SealedEvent], signed: list[Checkpoint]
) -> None:
    recomputed = heads(chain)
    assert verify_checkpoints([signed[0], signed[2]], recomputed, trusted(key)) == Finding(
        45, "bad-checkpoint", "does not chain to the preceding checkpoint at seq 15"
    )
    assert verify_checkpoints(signed[1:], recomputed, trusted(key)) == Finding(
        30, "bad-checkpoint", "the first checkpoint names a previous checkpoint"
    )


def test_the_checkpoint_payload_is_canonical_and_typed(key: Ed25519PrivateKey) -> None:
    head = bytes(range(32))
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert checkpoint_payload(5, head, T0, None, "k") == checkpoint_payload(
        5, head, paris, None, "k"
    )
    payload = checkpoint_payload(5, head, T0, b"\x01" * 64, "k")
    assert b'"type":"referrals.audit.checkpoint/v1"' in payload
    assert head.hex().encode() in payload
    with pytest.raises(ValueError, match="32 bytes"):
        checkpoint_payload(5, b"short", T0, None, "k")


# -- findings are safe to show ----------------------------------------------------------------


def test_findings_never_contain_event_content(chain: list[SealedEvent]) -> None:
    secret = "canary-Jansen-0612345678"
    tampered = list(chain)
    tampered[16] = replace(chain[16], body={**chain[16].body, "purpose": secret})
    finding = verify_chain(tampered)
    assert finding is not None
    assert secret not in repr(finding)
    assert "Jansen" not in finding.detail


# -- property: a single-field change is named exactly -----------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.uuids()
    | st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
        ),
    )
)
FIELDS = st.sampled_from(["actor", "action", "target", "outcome", "request_id", "at", "extra"])
BODIES = st.dictionaries(FIELDS, SCALARS | st.lists(SCALARS, max_size=3), min_size=1)


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(BODIES, min_size=1, max_size=60), data=st.data())
def test_a_random_single_field_change_is_named_at_its_position(
    bodies: list[dict[str, Any]], data: st.DataObject
) -> None:
    chain = build(bodies)
    assert verify_chain(chain) is None

    position = data.draw(st.integers(1, len(chain)), label="position")
    original = dict(chain[position - 1].body)
    kind = data.draw(st.sampled_from(["change", "remove", "add"]), label="kind")
    mutated = dict(original)
    if kind == "add":
        mutated[data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k != "seq"))] = (
            data.draw(SCALARS, label="value")
        )
    else:
        field = data.draw(st.sampled_from(sorted(original)), label="field")
        if kind == "remove":
            del mutated[field]
        else:
            mutated[field] = data.draw(SCALARS, label="value")
    assume(canonical_json(mutated) != canonical_json(original))

    tampered = list(chain)
    tampered[position - 1] = replace(chain[position - 1], body=mutated)
    assert verify_chain(tampered) == Finding(
        position, "altered", "the event does not match its chain hash"
    )


# -- canonical form ---------------------------------------------------------------------------


def test_canonical_json_does_not_depend_on_key_order() -> None:
    one = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "c": None}
    two = {"c": None, "a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert canonical_json(one) == canonical_json(two)
    assert canonical_json(one) == '{"a":{"x":"é","y":[1,2]},"b":1,"c":null}'.encode()


def test_canonical_json_encodes_equal_instants_in_any_zone_alike() -> None:
    utc = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    amsterdam = utc.astimezone(ZoneInfo("Europe/Amsterdam"))
    new_york = utc.astimezone(ZoneInfo("America/New_York"))
    offset = utc.astimezone(timezone(timedelta(hours=5, minutes=30)))
    encoded = {canonical_json({"at": moment}) for moment in (utc, amsterdam, new_york, offset)}
    assert encoded == {b'{"at":"2025-03-01T12:00:00.000000Z"}'}
    later = utc + timedelta(microseconds=1)
    assert canonical_json({"at": later}) == b'{"at":"2025-03-01T12:00:00.000001Z"}'


def test_canonical_json_normalises_uuids_collections_and_enums() -> None:
    request = uuid.UUID("12345678-1234-5678-1234-567812345678")
    event = {
        "request_id": request,
        "roles": ("caseworker", "auditor"),
        "keys": {"k2", "k1"},
        "units": frozenset({3, 1, 2}),
        "path": ["z", "a"],
        "action": Action.READ,
    }
    assert canonical_json(event) == (
        b'{"action":"referral:read","keys":["k1","k2"],"path":["z","a"],'
        b'"request_id":"12345678-1234-5678-1234-567812345678",'
        b'"roles":["auditor","caseworker"],"units":[1,2,3]}'
    )
    assert canonical_json({"roles": ("b", "a")}) == canonical_json({"roles": ["a", "b"]})
    mixed = canonical_json({"m": (1, "a", None, {"k": 1})})
    assert mixed == canonical_json({"m": ({"k": 1}, None, "a", 1)})


@pytest.mark.parametrize(
    "value",
    [
        b"raw bytes",
        date(2025, 3, 1),
        datetime(2025, 3, 1, 12, 0),  # naive: which zone?
        math.nan,
        math.inf,
        object(),
        {1: "non-string key"},
        [Path("/tmp")],
    ],
)
def test_canonical_json_refuses_anything_else(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json({"value": value})


def test_canonical_json_refuses_a_non_mapping() -> None:
    with pytest.raises(TypeError):
        canonical_json(["not", "a", "mapping"])  # type: ignore[arg-type]


# -- the signing key --------------------------------------------------------------------------


def test_the_signing_key_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "audit-signing.pem"
    key = create_signing_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_signing_key(path)
    assert public_key_id(loaded.public_key()) == public_key_id(key.public_key())
    checkpoint = sign_checkpoint(loaded, "k", 1, GENESIS, T0, None)
    key.public_key().verify(checkpoint.signature, checkpoint_payload(1, GENESIS, T0, None, "k"))
    assert os.listdir(tmp_path) == ["audit-signing.pem"]  # no temporary file left behind


def test_the_signing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "audit-signing.pem"
    create_signing_key_file(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        create_signing_key_file(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["audit-signing.pem"]


def test_the_signing_key_file_is_private_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        create_signing_key_file(tmp_path / "key.pem")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_loading_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620, 0o644])
def test_a_signing_key_file_others_may_access_is_refused(tmp_path: Path, mode: int) -> None:
    """Checked like the keyring: whoever reads this key can sign checkpoints."""
    path = tmp_path / "audit-signing.pem"
    create_signing_key_file(path)
    path.chmod(mode)
    with pytest.raises(ValueError, match="owner only") as info:
        load_signing_key(path)
    assert "\n" not in str(info.value)


def test_a_read_only_signing_key_mount_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "audit-signing.pem"
    key = create_signing_key_file(path)
    path.chmod(0o400)
    assert public_key_id(load_signing_key(path).public_key()) == public_key_id(key.public_key())


def test_public_key_ids_are_stable_and_distinct() -> None:
    one, two = generate_signing_key(), generate_signing_key()
    key_id = public_key_id(one.public_key())
    assert key_id.startswith("ed25519-")
    assert len(key_id) == len("ed25519-") + 16
    assert key_id == public_key_id(one.public_key())
    assert key_id != public_key_id(two.public_key())
