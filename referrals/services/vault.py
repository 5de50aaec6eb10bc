"""Keys in use: the keyring, each referral's data key, and the blind index.

The vault is built once per app from a ``KeyProvider``.  Use cases ask it for the
``Sealer`` of one referral (its unwrapped data key) and seal or open that referral's
fields with it; the crypto itself lives in referrals/crypto/, pure and key-injected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from referrals.crypto import aead, envelope
from referrals.crypto.blind_index import BlindIndex
from referrals.crypto.keyring import KeyProvider, Keyring
from referrals.db.models import Referral
from referrals.services.errors import Conflict

PERSONAL_NUMBER = ("referrals", "personal_number")


def webhook_secret_context(unit_id: str) -> aead.FieldContext:
    """Where a unit's webhook signing secret lives, bound into its ciphertext."""
    return aead.FieldContext("units", unit_id, "webhook_secret")


class RecordErased(Conflict):
    """The referral's data key was destroyed; only its non-personal skeleton remains."""

    def __init__(self) -> None:
        super().__init__("the referral has been erased", field="status")


@dataclass(frozen=True)
class Sealer:
    """Seals and opens the fields of one referral (and its notes and events)."""

    dek: envelope.DataKey = field(repr=False)
    # One cipher for every field of the referral (a fresh nonce each): a create seals
    # nine or more, and the bulk import thousands of referrals' worth.
    _fields: aead.FieldSealer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fields", aead.FieldSealer(self.dek.key, self.dek.key_id))

    def seal(self, table: str, record_id: object, name: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return self._fields.seal_text(aead.FieldContext(table, str(record_id), name), value)

    def open(self, table: str, record_id: object, name: str, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        context = aead.FieldContext(table, str(record_id), name)
        return aead.open_text(self._key_for, context, blob)

    def _key_for(self, key_id: str) -> bytes | None:
        return self.dek.key if key_id == self.dek.key_id else None


@dataclass(frozen=True)
class NewSealer(Sealer):
    """The sealer of a brand-new data key, with that key wrapped for storage."""

    wrapped: bytes = field(default=b"", repr=False)
    kek_id: str = ""


class Vault:
    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self._stamp = self._provider_stamp()
        self._keyring = provider.load()
        self._index = BlindIndex(self._keyring.index_key)

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def new_sealer(self, row: Referral) -> Sealer:
        """A fresh data key for a new referral, wrapped under the current KEK."""
        sealer = self.new_sealer_for_id(str(row.id))
        row.dek_wrapped = sealer.wrapped
        row.kek_id = sealer.kek_id
        return sealer

    def new_sealer_for_id(self, referral_id: str) -> NewSealer:
        # A stat per new referral: after `keys rotate` every running worker wraps new
        # data keys under the new KEK at once, so the old one can really be retired.
        if self._provider_stamp() != self._stamp:
            self._reload()
        dek = envelope.new_data_key()
        kek_id, kek = self._keyring.current_kek()
        return NewSealer(dek, envelope.wrap(kek, kek_id, referral_id, dek), kek_id)

    def sealer(self, row: Referral) -> Sealer:
        if row.dek_wrapped is None:
            raise RecordErased
        return Sealer(envelope.unwrap(self._kek, str(row.id), row.dek_wrapped))

    def rewrap(self, referral_id: str, wrapped: bytes) -> tuple[bytes, str]:
        """The same data key, wrapped under the current KEK: (wrapped key, KEK id)."""
        kek_id, kek = self._keyring.current_kek()
        return envelope.rewrap(self._kek, referral_id, wrapped, kek, kek_id), kek_id

    def seal_secret(self, context: aead.FieldContext, secret: str) -> tuple[bytes, str]:
        """A credential (a unit's webhook secret) sealed directly under the current KEK:
        (blob, KEK id).  ``keys rewrap`` re-seals it like a data key."""
        if self._provider_stamp() != self._stamp:
            self._reload()
        kek_id, kek = self._keyring.current_kek()
        return aead.seal_text(kek, kek_id, context, secret), kek_id

    def open_secret(self, context: aead.FieldContext, blob: bytes) -> str:
        return aead.open_text(self._kek, context, blob)

    def personal_number_index(self, normalized: str) -> str:
        return self._index.compute(*PERSONAL_NUMBER, normalized)

    def fingerprint(self, canonical: str) -> str:
        """A keyed digest of a request body (idempotency), never the body itself."""
        return self._index.compute("idempotency_keys", "fingerprint", canonical, length=32)

    def _kek(self, key_id: str) -> bytes | None:
        key = self._keyring.kek(key_id)
        if key is None:
            # Another instance may have rotated: pick up the new keyring once.
            self._reload()
            key = self._keyring.kek(key_id)
        return key

    def _reload(self) -> None:
        # Fails closed: if the keyring cannot be read now, the request fails rather than
        # carry on with a KEK that may have been retired meanwhile.
        with self._lock:
            stamp = self._provider_stamp()
            keyring = self._provider.load()
            self._keyring, self._index = keyring, BlindIndex(keyring.index_key)
            self._stamp = stamp

    def _provider_stamp(self) -> object:
        stamp = getattr(self._provider, "stamp", None)
        return stamp() if callable(stamp) else None
