"""Blind index: a keyed, deterministic tag of a normalised value for exact-match search.

Only for short identifiers such as the normalised personal number, never for free text: equal
values give equal tags, so the index reveals which rows share a value (that is what makes it
searchable), and a low-entropy value is only as safe as the index key. The index key is
separate from every KEK, and each (table, field) gets its own HKDF-derived key, so tags of the
same value in two columns cannot be linked.
"""

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# 24 bits.  Selective enough: with 100,000 referrals a lookup meets about 0.006 false
# candidates, which the service discards after decrypting and comparing each candidate's
# own number, so a tag match alone is never treated as a match.  The truncation is NOT a
# privacy measure worth counting on: for young people, whose birth year is narrow and
# whose age at submission is stored, a tag usually fits exactly one possible number.
# Whoever holds the index key can test guesses against tags, so the index key is as
# secret as the KEKs.
INDEX_BYTES = 3
KEY_BYTES = 32
_INFO_PREFIX = b"referrals blind index v1|"


class BlindIndex:
    """Computes blind-index tags under one index key."""

    def __init__(self, index_key: bytes) -> None:
        if len(index_key) != KEY_BYTES:
            raise ValueError(f"index key must be {KEY_BYTES} bytes")
        self._index_key = index_key
        # Filled lazily; a race only derives the same key twice, so no lock is needed.
        self._keys: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return "BlindIndex(<redacted>)"

    def _key(self, table: str, field: str) -> bytes:
        key = self._keys.get((table, field))
        if key is None:
            # "|" separates the names in the HKDF info; allowing it inside a name would let
            # ("a|b", "c") and ("a", "b|c") share a key.
            if not table or not field or "|" in table or "|" in field:
                raise ValueError("table and field must be non-empty and must not contain '|'")
            info = _INFO_PREFIX + table.encode("utf-8") + b"|" + field.encode("utf-8")
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                self._index_key
            )
            self._keys[(table, field)] = key
        return key

    def compute(self, table: str, field: str, normalized: str, *, length: int = INDEX_BYTES) -> str:
        """The hex tag (2 * ``length`` characters) of ``normalized`` in ``table.field``.

        The caller normalises: values that should match must be byte-for-byte equal here.
        ``length`` up to 32 gives a keyed digest where collisions must not happen.
        """
        if not 1 <= length <= 32:
            raise ValueError("length must be 1 to 32 bytes")
        mac = HMAC(self._key(table, field), hashes.SHA256())
        mac.update(normalized.encode("utf-8"))
        return mac.finalize()[:length].hex()
