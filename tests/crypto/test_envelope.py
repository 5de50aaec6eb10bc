"""Per-referral data keys wrapped by a KEK."""

import os
import re
from collections.abc import Callable

import pytest

from referrals.crypto.aead import DecryptionError, FieldContext, key_id_of, open_text, seal_text
from referrals.crypto.envelope import DataKey, new_data_key, rewrap, unwrap, wrap

KEK_1 = os.urandom(32)
KEK_2 = os.urandom(32)
REFERRAL = "5b0e7c1a-0000-4000-8000-000000000001"


def only(key_id: str, key: bytes) -> Callable[[str], bytes | None]:
    """A key_for that knows exactly one key."""
    return lambda wanted: key if wanted == key_id else None


def test_new_data_keys_are_random_with_dek_ids() -> None:
    first, second = new_data_key(), new_data_key()
    assert re.fullmatch(r"dek-[0-9a-f]{16}", first.key_id)
    assert len(first.key) == 32
    assert first.key_id != second.key_id
    assert first.key != second.key


def test_wrap_unwrap_round_trip() -> None:
    dek = new_data_key()
    wrapped = wrap(KEK_1, "kek-1", REFERRAL, dek)
    assert dek.key not in wrapped
    assert key_id_of(wrapped) == "kek-1"
    assert unwrap(only("kek-1", KEK_1), REFERRAL, wrapped) == dek


def test_wrapped_key_moved_to_another_referral_fails() -> None:
    wrapped = wrap(KEK_1, "kek-1", REFERRAL, new_data_key())
    with pytest.raises(DecryptionError):
        unwrap(only("kek-1", KEK_1), "5b0e7c1a-0000-4000-8000-000000000002", wrapped)


def test_unknown_kek_fails() -> None:
    wrapped = wrap(KEK_1, "kek-1", REFERRAL, new_data_key())
    with pytest.raises(DecryptionError, match="unknown key id"):
        unwrap(only("kek-2", KEK_2), REFERRAL, wrapped)


def test_rewrap_needs_only_the_new_kek_afterwards_and_fields_still_open() -> None:
    dek = new_data_key()
    context = FieldContext("referrals", REFERRAL, "description")
    field = seal_text(dek.key, dek.key_id, context, "needs support at school")
    wrapped = wrap(KEK_1, "kek-1", REFERRAL, dek)

    rewrapped = rewrap(only("kek-1", KEK_1), REFERRAL, wrapped, KEK_2, "kek-2")

    assert key_id_of(rewrapped) == "kek-2"
    # The old KEK is gone: only kek-2 is known.
    recovered = unwrap(only("kek-2", KEK_2), REFERRAL, rewrapped)
    assert recovered == dek
    assert open_text(only(dek.key_id, recovered.key), context, field) == ("needs support at school")
    with pytest.raises(DecryptionError):
        unwrap(only("kek-2", KEK_2), REFERRAL, wrapped)


def test_data_key_validates_its_parts() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DataKey("dek-1", os.urandom(16))
    with pytest.raises(ValueError, match="key id"):
        DataKey("dek 1", os.urandom(32))
