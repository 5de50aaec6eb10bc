"""Per-referral data keys (DEKs), stored only wrapped by a key-encryption key (KEK).

Every referral's fields are sealed under its own DEK; the DEK is sealed under the current KEK
and stored next to the referral. Rotating the KEK therefore rewraps one small blob per
referral and never touches field ciphertexts, and destroying a referral's wrapped DEK
crypto-shreds all of its fields at once.
"""

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from referrals.crypto.aead import DecryptionError, FieldContext, check_key_id, open_sealed, seal

DEK_BYTES = 32
# Where a wrapped DEK lives, bound into its associated data like any sealed field.
_TABLE = "data_keys"
_FIELD = "dek"


@dataclass(frozen=True)
class DataKey:
    """A referral's data key; the key id goes into the header of every field it seals."""

    key_id: str
    # Kept out of repr so a DataKey in a log line or traceback discloses nothing.
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key_id(self.key_id)
        if len(self.key) != DEK_BYTES:
            raise ValueError(f"data key must be {DEK_BYTES} bytes")


def new_data_key() -> DataKey:
    """A fresh random DEK with a random id ("dek-" and 16 hex characters)."""
    return DataKey(key_id=f"dek-{secrets.token_hex(8)}", key=os.urandom(DEK_BYTES))


def _serialize(dek: DataKey) -> bytes:
    key_id = dek.key_id.encode("ascii")
    return bytes((len(key_id),)) + key_id + dek.key


def _deserialize(data: bytes) -> DataKey:
    # The data was authenticated, so a bad shape means a bug, not an attack; still refuse it
    # rather than hand out a key of the wrong size.
    if not data or len(data) != 1 + data[0] + DEK_BYTES:
        raise DecryptionError("wrapped data key has the wrong length")
    raw_id = data[1 : 1 + data[0]]
    try:
        return DataKey(key_id=raw_id.decode("ascii"), key=data[1 + data[0] :])
    except ValueError:  # also UnicodeDecodeError
        pass
    raise DecryptionError("wrapped data key has a malformed key id")


def _context(referral_id: str) -> FieldContext:
    return FieldContext(_TABLE, referral_id, _FIELD)


def wrap(kek: bytes, kek_id: str, referral_id: str, dek: DataKey) -> bytes:
    """Seal ``dek`` under the KEK, bound to ``referral_id``."""
    return seal(kek, kek_id, _context(referral_id), _serialize(dek))


def unwrap(key_for: Callable[[str], bytes | None], referral_id: str, wrapped: bytes) -> DataKey:
    """Open a wrapped DEK of ``referral_id``; ``key_for`` maps a KEK id to the KEK or None.

    Raises DecryptionError if the KEK is unknown or the blob belongs to another referral.
    """
    return _deserialize(open_sealed(key_for, _context(referral_id), wrapped))


def rewrap(
    key_for: Callable[[str], bytes | None],
    referral_id: str,
    wrapped: bytes,
    new_kek: bytes,
    new_kek_id: str,
) -> bytes:
    """Move a wrapped DEK to another KEK; the DEK, and so every field ciphertext, is unchanged."""
    return wrap(new_kek, new_kek_id, referral_id, unwrap(key_for, referral_id, wrapped))
