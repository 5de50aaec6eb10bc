"""Who holds which checkpoint key: the sealer signs, everyone else only verifies.

API processes verify checkpoints with pinned public keys (``REFERRALS_AUDIT_PUBLIC_KEYS``)
and never need the signing key; the sealer loads the private key when it first signs.
Without pinned keys (development), the public key is derived from the signing key file.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from referrals.audit import chain

RAW_PUBLIC_KEY_SIZE = 32


def parse_public_keys(encoded: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Raw 32-byte Ed25519 public keys in base64, by their key id; ValueError if one is not."""
    keys: dict[str, Ed25519PublicKey] = {}
    for text in encoded:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("an audit public key is not base64") from None
        if len(raw) != RAW_PUBLIC_KEY_SIZE:
            raise ValueError("an audit public key is not a raw 32-byte Ed25519 key")
        public = Ed25519PublicKey.from_public_bytes(raw)
        keys[chain.public_key_id(public)] = public
    return keys


def encode_public_key(public: Ed25519PublicKey) -> str:
    """The form ``REFERRALS_AUDIT_PUBLIC_KEYS`` takes (``referrals audit public-key``)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


@dataclass
class AuditKeys:
    # Loads (in development: creates) the signing key; called at most once, and only by
    # the sealer and the checkpoint command.
    load_signing_key: Callable[[], Ed25519PrivateKey]
    pinned: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    _signing_key: Ed25519PrivateKey | None = field(default=None, init=False, repr=False)

    def signing_key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            self._signing_key = self.load_signing_key()
        return self._signing_key

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        if self.pinned:
            return dict(self.pinned)
        public = self.signing_key().public_key()
        return {chain.public_key_id(public): public}
