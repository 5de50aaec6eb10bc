"""Versioned AES-256-GCM for single database fields.

A sealed blob is::

    version (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext+tag

The key id in the header says which key to open it with, so keys can be rotated without a
separate column. The associated data binds that header and the blob's place in the database
(table, record id, field): a blob copied to another row, table or field, or given another key id,
fails authentication instead of decrypting as someone else's data.

Nonces are 96 random bits from ``os.urandom``. Random nonces are safe up to about 2**32
messages per key; every referral has its own data key and the KEK only wraps one data key per
referral, so no key comes near that bound.
"""

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
KEY_BYTES = 32  # AES-256 only: AESGCM would also accept 16/24-byte keys without complaint.
NONCE_BYTES = 12
TAG_BYTES = 16
# A closed ASCII alphabet keeps key ids safe to put in error messages and logs.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_CONTEXT_PART = 0xFFFF  # each part is prefixed with a 2-byte length


class DecryptionError(Exception):
    """A blob could not be opened. The message never holds plaintext or key material."""


@dataclass(frozen=True)
class FieldContext:
    """Where a sealed value lives; bound into the associated data."""

    table: str
    record_id: str
    field: str

    def __post_init__(self) -> None:
        # Fail when the context is built, so seal and open never disagree about encoding it.
        # Empty parts are refused: a blank record id would mean a blob bound to no row.
        for name in ("table", "record_id", "field"):
            value: str = getattr(self, name)
            if not value:
                raise ValueError(f"FieldContext.{name} must not be empty")
            try:
                encoded = value.encode("utf-8")
            except UnicodeEncodeError:
                encoded = None
            if encoded is None:
                raise ValueError(f"FieldContext.{name} is not valid Unicode")
            if len(encoded) > _MAX_CONTEXT_PART:
                raise ValueError(f"FieldContext.{name} is longer than {_MAX_CONTEXT_PART} bytes")


def check_key_id(key_id: str) -> None:
    """Raise ValueError unless ``key_id`` is 1..64 characters of [A-Za-z0-9._-]."""
    if _KEY_ID.fullmatch(key_id) is None:
        raise ValueError("key id must be 1..64 characters of [A-Za-z0-9._-]")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes")


def _associated_data(header: bytes, context: FieldContext) -> bytes:
    """The header, then each context part length-prefixed, so ("ab", "c") and ("a", "bc")
    never produce the same associated data."""
    out = bytearray(header)
    for part in (context.table, context.record_id, context.field):
        encoded = part.encode("utf-8")
        out += len(encoded).to_bytes(2, "big") + encoded
    return bytes(out)


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((FORMAT_VERSION, len(encoded))) + encoded


def _parse_header(blob: bytes) -> tuple[str, int]:
    """The key id and the header length; DecryptionError if the header is not well formed."""
    if len(blob) < 2:
        raise DecryptionError("ciphertext is truncated")
    if blob[0] != FORMAT_VERSION:
        raise DecryptionError(f"unknown ciphertext format version {blob[0]}")
    end = 2 + blob[1]
    if len(blob) < end:
        raise DecryptionError("ciphertext is truncated")
    raw = blob[2:end]
    # Check the bytes before decoding, so a corrupt header never reaches an error message.
    if not raw.isascii() or _KEY_ID.fullmatch(raw.decode("ascii")) is None:
        raise DecryptionError("ciphertext has a malformed key id")
    return raw.decode("ascii"), end


class FieldSealer:
    """``seal`` and ``seal_text`` for many fields under one key (a referral's data key):
    the key and its id are checked, the header built and the AES-GCM key set up once.
    Each field still gets a fresh random nonce of its own, exactly as ``seal`` gives it."""

    def __init__(self, key: bytes, key_id: str) -> None:
        _check_key(key)
        check_key_id(key_id)
        self._header = _header(key_id)
        self._aead = AESGCM(key)

    def seal(self, context: FieldContext, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        associated = _associated_data(self._header, context)
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def seal_text(self, context: FieldContext, plaintext: str) -> bytes:
        return self.seal(context, _utf8(plaintext))


def seal(key: bytes, key_id: str, context: FieldContext, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key`` for the field ``context``."""
    return FieldSealer(key, key_id).seal(context, plaintext)


def key_id_of(blob: bytes) -> str:
    """The key id in ``blob``'s header, e.g. to find rows still using a KEK; nothing is verified."""
    return _parse_header(blob)[0]


def open_sealed(
    key_for: Callable[[str], bytes | None], context: FieldContext, blob: bytes
) -> bytes:
    """Decrypt ``blob`` sealed for ``context``; ``key_for`` maps a key id to its key or None.

    Raises DecryptionError for any malformed, unknown-key, tampered or misplaced blob.
    Exceptions raised by ``key_for`` itself (say, a KMS outage) are not decryption failures
    and propagate unchanged.
    """
    key_id, header_end = _parse_header(blob)
    if len(blob) < header_end + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("ciphertext is truncated")
    key = key_for(key_id)
    if key is None:
        raise DecryptionError(f"unknown key id {key_id!r}")
    _check_key(key)
    header = blob[:header_end]
    nonce = blob[header_end : header_end + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(
            nonce, blob[header_end + NONCE_BYTES :], _associated_data(header, context)
        )
    except InvalidTag:
        # from None: InvalidTag carries nothing useful, and "wrong key" vs "tampered" vs
        # "wrong row" must stay indistinguishable anyway.
        raise DecryptionError("ciphertext failed authentication") from None


def seal_text(key: bytes, key_id: str, context: FieldContext, plaintext: str) -> bytes:
    """``seal`` for text, stored as UTF-8."""
    return seal(key, key_id, context, _utf8(plaintext))


def _utf8(plaintext: str) -> bytes:
    try:
        data = plaintext.encode("utf-8")
    except UnicodeEncodeError:
        data = None
    # Raised outside the handler: UnicodeEncodeError holds the whole plaintext as .object,
    # and an exception context would carry it into tracebacks and error reporters.
    if data is None:
        raise ValueError("plaintext is not valid Unicode (lone surrogate)")
    return data


def open_text(key_for: Callable[[str], bytes | None], context: FieldContext, blob: bytes) -> str:
    """``open_sealed`` for text sealed with ``seal_text``."""
    data = open_sealed(key_for, context, blob)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Outside the handler, for the same reason as in seal_text.
    if text is None:
        raise DecryptionError("plaintext is not UTF-8 text")
    return text
