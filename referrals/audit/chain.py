"""The audit hash chain and its signed checkpoints, in pure Python (stdlib + ``cryptography``).

Every audit event is sealed into one chain::

    hash_n = SHA-256(hash_{n-1} || canonical_json({**body_n, "seq": n}))    hash_0 = GENESIS

The sequence number is hashed with the body, so moving a body to another position, deleting
an event or duplicating one breaks the chain at the first affected position.  An attacker with
write access to the table can still rewrite the chain from some point on and recompute every
later hash; that is what the Ed25519-signed checkpoints of the chain head are for: a
checkpoint signed before the tampering no longer matches the recomputed head, and a
checkpoint beyond the end of the chain reveals a truncated tail.  Checkpoints chain to each
other through ``previous`` (the preceding checkpoint's signature), so removing, reordering or
replaying one is detected as well.

Limits, stated plainly: the chain cannot show a truncated tail on its own, and events after
the newest checkpoint (or a deletion of the newest checkpoints together with the tail) are
only as trustworthy as the database until the next checkpoint is written somewhere the
attacker cannot reach.

Nothing here reads a database, a clock or the environment: keys, times and events are passed
in.  Findings carry sequence numbers and fixed text only, never event content.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "GENESIS",
    "Checkpoint",
    "Finding",
    "Problem",
    "SealedEvent",
    "canonical_json",
    "checkpoint_payload",
    "create_signing_key_file",
    "generate_signing_key",
    "link",
    "load_signing_key",
    "public_key_id",
    "seal",
    "sign_checkpoint",
    "verify_chain",
    "verify_checkpoints",
    "verify_encoded",
]

GENESIS: Final = bytes(32)
"""The hash before the first event."""

HASH_SIZE: Final = 32
SEQ_FIELD: Final = "seq"
CHECKPOINT_TYPE: Final = "referrals.audit.checkpoint/v1"

Problem = Literal[
    "altered",
    "missing",
    "inserted",
    "reordered",
    "bad-checkpoint",
    "checkpoint-beyond-chain",
]


# -- canonical form ---------------------------------------------------------------------------


def canonical_json(event: Mapping[str, Any]) -> bytes:
    """The deterministic bytes of ``event`` that are hashed.

    Keys sorted, no whitespace, UTF-8.  Values are normalised first: aware datetimes become
    ISO 8601 in UTC with microseconds and a ``Z`` (equal instants in different zones encode
    the same); UUIDs become their string form; tuples, sets and frozensets become sorted
    lists (lists keep their order); ``str``/``int``/``float`` subclasses such as ``StrEnum``
    members become their plain value; mappings are normalised recursively.  Anything else --
    bytes, dates without a time, naive datetimes, non-string keys, NaN or infinities --
    raises ``TypeError``, so no value ever reaches the hash in an ambiguous form.
    """
    if not isinstance(event, Mapping):
        raise TypeError("an audit event must be a mapping")
    normalised = _normalise(event)
    return json.dumps(
        normalised,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def _normalise(value: Any) -> Any:
    # Exact JSON types pass through; bool cannot be subclassed, so a subclass of int here
    # (an IntEnum member) is never a bool.
    if value is None or type(value) in (bool, str, int):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # the plain value of a StrEnum member, not its repr
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("audit events cannot hold NaN or infinite numbers")
        return float.__float__(value)
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        normalised: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit event keys must be strings, not {type(key).__name__}")
            normalised[str.__str__(key)] = _normalise(item)
        return normalised
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, tuple | set | frozenset):
        return _sorted([_normalise(item) for item in value])
    raise TypeError(f"{type(value).__name__} is not allowed in an audit event")


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TypeError("audit event times must be timezone-aware")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _sorted(items: list[Any]) -> list[Any]:
    """Strings and numbers sort naturally; anything else (mixed types, mappings, lists) by
    its canonical encoding -- a total order that depends only on the values."""
    if all(type(item) is str for item in items):
        return sorted(items)
    if all(type(item) in (int, float) for item in items):
        return sorted(items)
    return sorted(items, key=_encode_item)


def _encode_item(item: Any) -> str:
    return json.dumps(
        item, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


# -- the chain --------------------------------------------------------------------------------


def link(previous: bytes, event: Mapping[str, Any]) -> bytes:
    """The chain hash after ``event``: ``SHA-256(previous || canonical_json(event))``."""
    if len(previous) != HASH_SIZE:
        raise ValueError(f"a chain hash is {HASH_SIZE} bytes")
    return hashlib.sha256(previous + canonical_json(event)).digest()


@dataclass(frozen=True)
class SealedEvent:
    """One event at its chain position.

    ``body`` is the event's fields without ``seq`` and ``hash``; the sequence number is
    hashed with it: ``hash == link(previous_hash, {**body, "seq": seq})``.
    """

    seq: int
    body: Mapping[str, Any]
    hash: bytes


def seal(previous: bytes, seq: int, body: Mapping[str, Any]) -> SealedEvent:
    """Seal ``body`` at position ``seq`` after the chain hash ``previous``.

    Raises ``ValueError`` if ``body`` carries its own ``seq`` field: the chain position
    would silently replace it, so a change to it could not be detected.
    """
    if SEQ_FIELD in body:
        raise ValueError("an event body must not carry its own 'seq' field")
    return SealedEvent(seq=seq, body=body, hash=link(previous, {**body, SEQ_FIELD: seq}))


@dataclass(frozen=True)
class Finding:
    """The first problem found, at sequence number ``seq``.  ``detail`` is fixed text and
    sequence numbers only, safe to log and to show an auditor; never event content."""

    seq: int
    problem: Problem
    detail: str = ""


def verify_chain(
    events: Iterable[SealedEvent],
    *,
    start_seq: int = 1,
    start_hash: bytes = GENESIS,
) -> Finding | None:
    """Recompute the chain over ``events`` (in the order given; the caller orders by seq)
    and return the first problem, or ``None`` if every event is where it should be.

    ``start_seq`` is the first position expected and ``start_hash`` the chain hash before
    it, so a verification can resume from a trusted point.  Streams: memory use does not
    grow with the chain.

    How tampering shows up (always the first affected sequence number):

    * a field of event *n* changed, added or removed -> ``altered`` at *n*;
    * event *n* deleted -> ``missing`` at *n* (the first absent number);
    * a second event claiming position *n* -> ``inserted`` at *n*;
    * an event whose number is lower than the one before it -> ``reordered`` at its number;
    * two events' contents swapped (or their seq values swapped) -> ``altered`` at the
      lower one, because the body now at that position was hashed for another position
      (and after another predecessor);
    * an event inserted or deleted with every later event renumbered and rehashed, or a
      truncated tail -> invisible here: only ``verify_checkpoints`` can see it.
    """
    return verify_encoded(_encoded(events), start_seq=start_seq, start_hash=start_hash)


def _encoded(events: Iterable[SealedEvent]) -> Iterator[tuple[int, bytes | str, bytes]]:
    for event in events:
        if SEQ_FIELD in event.body:
            yield event.seq, "the event body carries its own seq field", event.hash
            continue
        try:
            encoded = canonical_json({**event.body, SEQ_FIELD: event.seq})
        except TypeError:
            yield event.seq, UNHASHABLE, event.hash
            continue
        yield event.seq, encoded, event.hash


UNHASHABLE: Final = "the event body holds a value that cannot be hashed"


def verify_encoded(
    events: Iterable[tuple[int, bytes | str, bytes]],
    *,
    start_seq: int = 1,
    start_hash: bytes = GENESIS,
) -> Finding | None:
    """``verify_chain`` over events already in their canonical form: ``(seq, encoded,
    hash)`` where ``encoded`` is ``canonical_json({**body, "seq": seq})``, or the detail
    of an ``altered`` finding when the body cannot be hashed.  The tight loop the verifier
    runs over the stored chain; the same findings, in the same order."""
    if len(start_hash) != HASH_SIZE:
        raise ValueError(f"a chain hash is {HASH_SIZE} bytes")
    expected = start_seq
    previous_hash = start_hash
    sha256 = hashlib.sha256
    for seq, encoded, stored in events:
        if seq != expected:
            last = expected - 1
            if seq > expected:
                absent = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
                return Finding(expected, "missing", f"no event at seq {absent}")
            if seq == last:
                return Finding(seq, "inserted", f"a second event claims seq {seq}")
            return Finding(seq, "reordered", f"seq {seq} follows seq {last}")
        if type(encoded) is str:
            return Finding(seq, "altered", encoded)
        recomputed = sha256(previous_hash + encoded).digest()  # type: ignore[operator]
        if recomputed != stored:
            return Finding(seq, "altered", "the event does not match its chain hash")
        previous_hash = recomputed
        expected = seq + 1
    return None


# -- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement "the chain head at ``seq`` is ``head``", chained to the preceding
    checkpoint by its signature (``previous``; ``None`` for the first checkpoint)."""

    seq: int
    head: bytes
    created_at: datetime
    previous: bytes | None
    key_id: str
    signature: bytes


def checkpoint_payload(
    seq: int,
    head: bytes,
    created_at: datetime,
    previous: bytes | None,
    key_id: str,
) -> bytes:
    """The canonical bytes that a checkpoint's signature covers (with a type tag, so a
    checkpoint signature can never be mistaken for any other signed message)."""
    if len(head) != HASH_SIZE:
        raise ValueError(f"a chain hash is {HASH_SIZE} bytes")
    return canonical_json(
        {
            "type": CHECKPOINT_TYPE,
            "seq": seq,
            "head": head.hex(),
            "created_at": created_at,
            "previous": None if previous is None else previous.hex(),
            "key_id": key_id,
        }
    )


def sign_checkpoint(
    key: Ed25519PrivateKey,
    key_id: str,
    seq: int,
    head: bytes,
    created_at: datetime,
    previous: bytes | None,
) -> Checkpoint:
    """Sign the chain head ``head`` at ``seq``; ``previous`` is the signature of the newest
    existing checkpoint, or ``None`` for the first one."""
    payload = checkpoint_payload(seq, head, created_at, previous, key_id)
    return Checkpoint(
        seq=seq,
        head=head,
        created_at=created_at,
        previous=previous,
        key_id=key_id,
        signature=key.sign(payload),
    )


def verify_checkpoints(
    checkpoints: Sequence[Checkpoint],
    heads: Mapping[int, bytes],
    public_keys: Mapping[str, Ed25519PublicKey],
) -> Finding | None:
    """Check every checkpoint (all of them, oldest first) and return the first problem.

    ``heads`` maps sequence numbers to the chain hash *recomputed* at that position (at
    least every checkpointed one that the chain reaches); ``public_keys`` maps key ids to
    the keys trusted to sign checkpoints.  Each checkpoint must be signed by a known key,
    name the preceding checkpoint's signature as ``previous`` (the first one: ``None``),
    have a higher seq than the preceding one, and match the recomputed head.  A checkpoint
    whose seq the chain does not reach is ``checkpoint-beyond-chain`` -- a truncated tail;
    every other failure is ``bad-checkpoint``.  The finding's seq is the checkpoint's.
    """
    preceding: Checkpoint | None = None
    for checkpoint in checkpoints:
        seq = checkpoint.seq
        public = public_keys.get(checkpoint.key_id)
        if public is None:
            return Finding(seq, "bad-checkpoint", "signed with an unknown key id")
        try:
            payload = checkpoint_payload(
                seq, checkpoint.head, checkpoint.created_at, checkpoint.previous, checkpoint.key_id
            )
            public.verify(checkpoint.signature, payload)
        except (InvalidSignature, TypeError, ValueError):
            return Finding(seq, "bad-checkpoint", "the signature does not verify")
        if preceding is None:
            if checkpoint.previous is not None:
                return Finding(
                    seq, "bad-checkpoint", "the first checkpoint names a previous checkpoint"
                )
        else:
            if seq <= preceding.seq:
                return Finding(
                    seq,
                    "bad-checkpoint",
                    f"checkpoint at seq {seq} follows the checkpoint at seq {preceding.seq}",
                )
            if checkpoint.previous != preceding.signature:
                return Finding(
                    seq,
                    "bad-checkpoint",
                    f"does not chain to the preceding checkpoint at seq {preceding.seq}",
                )
        recomputed = heads.get(seq)
        if recomputed is None:
            return Finding(seq, "checkpoint-beyond-chain", f"the chain does not reach seq {seq}")
        if recomputed != checkpoint.head:
            return Finding(seq, "bad-checkpoint", "the chain head does not match the signed head")
        preceding = checkpoint
    return None


# -- signing keys -----------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_id(public: Ed25519PublicKey) -> str:
    """``ed25519-`` and the first 16 hex digits of SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The checkpoint signing key from an unencrypted PEM (PKCS #8) file; ValueError if
    group or others may access the file (whoever reads it can sign checkpoints), checked
    the same way as the keyring's."""
    with path.open("rb") as handle:
        # fstat the descriptor we read from, so the mode checked is the file's we read.
        mode = os.fstat(handle.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise ValueError(
                f"audit signing key file {path} has mode {mode:o}: it must be readable by "
                "its owner only (chmod 600)"
            )
        pem = handle.read()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def create_signing_key_file(path: Path) -> Ed25519PrivateKey:
    """Generate a signing key and write it to ``path`` (PEM PKCS #8, mode 0600).

    The key is written to a private temporary file in the same directory (0600 from the
    start) and hard-linked into place, so ``path`` is never half-written and never
    overwritten: if it exists, ``FileExistsError`` is raised and the caller decides.
    """
    key = generate_signing_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory = path.parent
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        os.unlink(temporary)
    _fsync_directory(directory)
    return key


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
