"""Versioned AES-256-GCM field encryption."""

import os
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from referrals.crypto.aead import (
    FORMAT_VERSION,
    DecryptionError,
    FieldContext,
    FieldSealer,
    key_id_of,
    open_sealed,
    open_text,
    seal,
    seal_text,
)

KEY = os.urandom(32)
KEY_ID = "dek-0123456789abcdef"
CONTEXT = FieldContext("referrals", "5b0e7c1a-0000-4000-8000-000000000001", "description")
HEADER_LENGTH = 2 + len(KEY_ID)
NONCE_LENGTH = 12
# Sealed once at import: hypothesis tests must not depend on function-scoped fixtures.
BLOB = seal(KEY, KEY_ID, CONTEXT, b"Ung person, 15 ar, behover stod")


def key_for(key_id: str) -> bytes | None:
    return KEY if key_id == KEY_ID else None


def test_round_trip() -> None:
    blob = seal(KEY, KEY_ID, CONTEXT, b"secret")
    assert open_sealed(key_for, CONTEXT, blob) == b"secret"


def test_blob_layout() -> None:
    blob = seal(KEY, KEY_ID, CONTEXT, b"secret")
    assert blob[0] == FORMAT_VERSION
    assert blob[1] == len(KEY_ID)
    assert blob[2:HEADER_LENGTH] == KEY_ID.encode("ascii")
    # nonce, then ciphertext of the same length as the plaintext, then a 16-byte tag
    assert len(blob) == HEADER_LENGTH + NONCE_LENGTH + len(b"secret") + 16
    assert b"secret" not in blob
    assert key_id_of(blob) == KEY_ID


@settings(max_examples=200, deadline=None)
@given(st.text())
@example("")
@example("x" * 64 * 1024)
@example("\U0001f600" * 16 * 1024)  # 64 KiB of 4-byte UTF-8
@example("Åsa Öberg, 19121212-1212\n\u0000\ufeff")
def test_text_round_trip(text: str) -> None:
    assert open_text(key_for, CONTEXT, seal_text(KEY, KEY_ID, CONTEXT, text)) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(BLOB) - 1), st.integers(1, 255))
def test_any_single_byte_mutation_is_rejected(position: int, xor: int) -> None:
    mutated = bytearray(BLOB)
    mutated[position] ^= xor
    with pytest.raises(DecryptionError):
        open_sealed(key_for, CONTEXT, bytes(mutated))


def test_every_truncation_is_rejected() -> None:
    for length in range(len(BLOB)):
        with pytest.raises(DecryptionError):
            open_sealed(key_for, CONTEXT, BLOB[:length])


def test_appended_bytes_are_rejected() -> None:
    with pytest.raises(DecryptionError):
        open_sealed(key_for, CONTEXT, BLOB + b"\x00")


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_byte_is_rejected(version: int) -> None:
    blob = bytes((version,)) + BLOB[1:]
    with pytest.raises(DecryptionError, match="version"):
        key_id_of(blob)
    with pytest.raises(DecryptionError, match="version"):
        open_sealed(key_for, CONTEXT, blob)


@pytest.mark.parametrize(
    "header",
    [b"", b"\x01", b"\x01\x00", b"\x01\x05ab", b"\x01\x02a/", b"\x01\x02\xc3\xa5"],
    ids=["empty", "no-length", "empty-id", "short-id", "bad-char", "non-ascii"],
)
def test_malformed_header_is_rejected(header: bytes) -> None:
    with pytest.raises(DecryptionError):
        key_id_of(header + os.urandom(28))


def test_unknown_key_id_is_rejected() -> None:
    blob = seal(KEY, "kek-retired", CONTEXT, b"secret")
    with pytest.raises(DecryptionError, match="unknown key id"):
        open_sealed(key_for, CONTEXT, blob)


def test_wrong_key_under_the_same_id_is_rejected() -> None:
    other = os.urandom(32)
    with pytest.raises(DecryptionError):
        open_sealed(lambda _: other, CONTEXT, BLOB)


@pytest.mark.parametrize(
    "elsewhere",
    [
        FieldContext(CONTEXT.table, "5b0e7c1a-0000-4000-8000-000000000002", CONTEXT.field),
        FieldContext(CONTEXT.table, CONTEXT.record_id, "notes"),
        FieldContext("contacts", CONTEXT.record_id, CONTEXT.field),
        # Same bytes, split differently: the length prefixes must tell them apart.
        FieldContext(CONTEXT.table + CONTEXT.record_id[:1], CONTEXT.record_id[1:], CONTEXT.field),
    ],
    ids=["other-record", "other-field", "other-table", "shifted-boundary"],
)
def test_blob_copied_elsewhere_is_rejected(elsewhere: FieldContext) -> None:
    with pytest.raises(DecryptionError):
        open_sealed(key_for, elsewhere, BLOB)


def test_errors_never_contain_the_plaintext_or_key() -> None:
    secret = "19121212-1212 Hemlig Person"
    blob = seal_text(KEY, KEY_ID, CONTEXT, secret)
    failures: list[Callable[[], object]] = [
        lambda: open_text(lambda _: os.urandom(32), CONTEXT, blob),
        lambda: open_text(key_for, FieldContext("x", "y", "z"), blob),
        lambda: open_text(key_for, CONTEXT, seal(KEY, KEY_ID, CONTEXT, b"\xff" + secret.encode())),
    ]
    for failure in failures:
        with pytest.raises(DecryptionError) as info:
            failure()
        message = str(info.value)
        assert secret not in message
        assert "Hemlig" not in message
        assert KEY.hex() not in message
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__


def test_lone_surrogate_text_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="Unicode") as info:
        seal_text(KEY, KEY_ID, CONTEXT, "Hemlig \ud800")
    assert "Hemlig" not in str(info.value)
    assert info.value.__context__ is None


def test_ten_thousand_seals_use_distinct_nonces() -> None:
    blobs = [seal(KEY, KEY_ID, CONTEXT, b"same value") for _ in range(10_000)]
    nonces = {blob[HEADER_LENGTH : HEADER_LENGTH + NONCE_LENGTH] for blob in blobs}
    ciphertexts = {blob[HEADER_LENGTH + NONCE_LENGTH :] for blob in blobs}
    assert len(nonces) == 10_000
    assert len(ciphertexts) == 10_000


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33])
def test_seal_requires_a_256_bit_key(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(os.urandom(length), KEY_ID, CONTEXT, b"x")


@pytest.mark.parametrize("key_id", ["", "a" * 65, "kek 1", "kék", "kek/1", "kek-1\n"])
def test_seal_refuses_bad_key_ids(key_id: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        seal(KEY, key_id, CONTEXT, b"x")


def test_longest_key_id_round_trips() -> None:
    key_id = "A-z0._" + "9" * 58
    blob = seal(KEY, key_id, CONTEXT, b"x")
    assert key_id_of(blob) == key_id
    assert open_sealed(lambda _: KEY, CONTEXT, blob) == b"x"


@pytest.mark.parametrize(
    ("table", "record_id", "field"),
    [("", "1", "f"), ("t", "", "f"), ("t", "1", ""), ("t", "\ud800", "f"), ("t" * 65536, "1", "f")],
)
def test_field_context_refuses_unencodable_parts(table: str, record_id: str, field: str) -> None:
    with pytest.raises(ValueError, match="FieldContext"):
        FieldContext(table, record_id, field)


def test_key_for_exceptions_propagate() -> None:
    def failing(_: str) -> bytes | None:
        raise ConnectionError("KMS unreachable")

    with pytest.raises(ConnectionError):
        open_sealed(failing, CONTEXT, BLOB)


def test_a_field_sealer_seals_as_seal_does_with_a_fresh_nonce_each_time() -> None:
    # One cipher for many fields of a referral: the same blobs as ``seal`` (they open
    # with the key, in their own context only), and never a repeated nonce.
    fields = FieldSealer(KEY, KEY_ID)
    elsewhere = FieldContext("referrals", CONTEXT.record_id, "narrative")
    blobs = [fields.seal(CONTEXT, b"same value") for _ in range(10_000)]
    assert {blob[:HEADER_LENGTH] for blob in blobs} == {BLOB[:HEADER_LENGTH]}
    assert len({blob[HEADER_LENGTH : HEADER_LENGTH + NONCE_LENGTH] for blob in blobs}) == 10_000
    assert all(open_sealed(key_for, CONTEXT, blob) == b"same value" for blob in blobs[:100])
    with pytest.raises(DecryptionError):
        open_sealed(key_for, elsewhere, blobs[0])
    text = fields.seal_text(elsewhere, "Påhittad text")
    assert open_text(key_for, elsewhere, text) == "Påhittad text"
    with pytest.raises(ValueError, match="Unicode") as info:
        fields.seal_text(CONTEXT, "Hemlig \ud800")
    assert "Hemlig" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "key_id"), [(bytes(16), KEY_ID), (KEY, "kek 1")], ids=["short key", "bad key id"]
)
def test_a_field_sealer_refuses_what_seal_refuses(key: bytes, key_id: str) -> None:
    with pytest.raises(ValueError, match=r"32 bytes|key id"):
        FieldSealer(key, key_id)
