"""Blind index over normalised values."""

import os
import re

import pytest

from referrals.crypto.blind_index import INDEX_BYTES, BlindIndex

KEY = os.urandom(32)
INDEX = BlindIndex(KEY)
NUMBER = "191212121212"


def test_deterministic_and_16_hex_characters() -> None:
    tag = INDEX.compute("referrals", "personal_number", NUMBER)
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
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
    expected = mac.finalize()[:8].hex()
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
