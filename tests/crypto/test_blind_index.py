"""Blind index over normalised values."""

import os
import re

import pytest

from referrals.crypto.blind_index import INDEX_BYTES, BlindIndex

KEY = os.urandom(32)
INDEX = BlindIndex(KEY)
NUMBER = "191212121212"


def test_deterministic_and_6_hex_characters() -> None:
    tag = INDEX.compute("referrals", "personal_number", NUMBER)
    assert re.fullmatch(r"[0-9a-f]{6}", tag)
    assert len(tag) == 2 * INDEX_BYTES
    assert INDEX.compute("referrals", "personal_number", NUMBER) == tag
    assert BlindIndex(KEY).compute("referrals", "personal_number", NUMBER) == tag


def test_differs_per_value() -> None:
    assert INDEX.compute("referrals", "personal_number", NUMBER) != INDEX.compute(
        "referrals", "personal_number", "191212121213"
    )


def test_differs_per_field_and_table() -> None:
    tags = {
        INDEX.compute("referrals", "personal_number", NUMBER),
        INDEX.compute("referrals", "guardian_number", NUMBER),
        INDEX.compute("contacts", "personal_number", NUMBER),
    }
    assert len(tags) == 3


def test_differs_per_key() -> None:
    other = BlindIndex(os.urandom(32))
    assert INDEX.compute("referrals", "personal_number", NUMBER) != other.compute(
        "referrals", "personal_number", NUMBER
    )


def test_matches_an_independent_hkdf_hmac_computation() -> None:
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = os.urandom(32)
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"referrals blind index v1|referrals|personal_number",
    ).derive(key)
    mac = hmac.HMAC(derived, hashes.SHA256())
    mac.update(NUMBER.encode())
    expected = mac.finalize()[:3].hex()
    assert BlindIndex(key).compute("referrals", "personal_number", NUMBER) == expected


@pytest.mark.parametrize(("table", "field"), [("", "f"), ("t", ""), ("a|b", "c"), ("a", "b|c")])
def test_refuses_ambiguous_names(table: str, field: str) -> None:
    with pytest.raises(ValueError, match="'\\|'"):
        INDEX.compute(table, field, NUMBER)


def test_requires_a_256_bit_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(os.urandom(16))


def test_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(INDEX)


def test_tags_collide_by_design_but_stay_selective() -> None:
    """24-bit tags: among 20,000 distinct numbers a few share a tag, most do not."""
    index = BlindIndex(bytes(range(32)))  # a fixed test key: the count is deterministic
    tags = [index.compute("referrals", "personal_number", f"2010{n:08d}") for n in range(20_000)]
    distinct = len(set(tags))
    assert distinct < 20_000  # birthday bound: about 12 collisions expected
    assert distinct > 19_900


def test_full_length_digest_for_fingerprints() -> None:
    digest = INDEX.compute("idempotency_keys", "fingerprint", "body", length=32)
    assert len(digest) == 64
    with pytest.raises(ValueError, match="length"):
        INDEX.compute("idempotency_keys", "fingerprint", "body", length=33)
