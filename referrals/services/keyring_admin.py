"""Operator jobs on the keyring: which KEK wraps how many data keys, and re-wrapping.

Re-wrapping never decrypts a field: it unwraps each referral's data key with the old
KEK and wraps it again with the current one.  Batches commit one by one, so the job can
be interrupted at any point and run again; it picks up what is still to do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from referrals.crypto.aead import DecryptionError
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Vault, webhook_secret_context


def usage(uow: UnitOfWork) -> dict[str, int]:
    """Per KEK: how many referral data keys and unit webhook secrets it seals."""
    counts = dict(uow.referrals.kek_usage())
    for kek_id, count in secret_usage(uow).items():
        counts[kek_id] = counts.get(kek_id, 0) + count
    return counts


def secret_usage(uow: UnitOfWork) -> dict[str, int]:
    return uow.units.secret_kek_usage()


def pending_rewrap(uow: UnitOfWork, vault: Vault) -> int:
    current = vault.keyring.current
    return sum(count for kek_id, count in usage(uow).items() if kek_id != current)


def reseal_secrets(uow: UnitOfWork, vault: Vault) -> list[str]:
    """Seal every unit's webhook secret under the current KEK; returns the units whose
    secret did not open (reported and left as they are)."""
    unreadable = []
    for unit in uow.units.with_secret_not_under(vault.keyring.current):
        old = unit.webhook_secret
        assert old is not None
        context = webhook_secret_context(unit.id)
        try:
            secret = vault.open_secret(context, old)
        except DecryptionError:
            unreadable.append(unit.id)
            continue
        # A rotation that lands meanwhile wins (and is sealed under the current KEK).
        uow.units.replace_secret(unit.id, old, *vault.seal_secret(context, secret))
    uow.commit()
    return unreadable


@dataclass(frozen=True)
class Batch:
    moved: int
    # Where the next batch starts (keyset on id); None when no row was left.
    last_id: uuid.UUID | None
    # Rows whose data key did not unwrap (damaged, or under a KEK no longer held):
    # reported and skipped, so one bad row cannot stop the job.
    unreadable: list[uuid.UUID]


def rewrap_batch(
    uow: UnitOfWork, vault: Vault, batch_size: int, after: uuid.UUID | None = None
) -> Batch:
    """Re-wrap up to ``batch_size`` data keys with ids after ``after``, and commit.

    One SELECT and one batched UPDATE (executemany, compare-and-swap on the old KEK id
    per row) per batch: a row another job re-wrapped meanwhile is left as it is."""
    last_id, unreadable = None, []
    changes: list[tuple[uuid.UUID, str, bytes, str]] = []
    current = vault.keyring.current
    for referral_id, wrapped, old_kek_id in uow.referrals.wrapped_keys_not_under(
        current, batch_size, after
    ):
        last_id = referral_id
        try:
            new_wrapped, kek_id = vault.rewrap(str(referral_id), wrapped)
        except DecryptionError:
            unreadable.append(referral_id)
            continue
        changes.append((referral_id, old_kek_id, new_wrapped, kek_id))
    moved = uow.referrals.replace_wrapped_keys(changes)
    uow.commit()
    return Batch(moved, last_id, unreadable)


# Data keys unwrapped per KEK by ``check``: enough to tell the right keyring from another
# (one wrong byte fails them all), few enough to run before every start.
CHECK_SAMPLE = 20


@dataclass(frozen=True)
class KeyCheck:
    """Does this keyring open this database?  Nothing is decrypted but data keys and
    webhook secrets, and nothing is written."""

    # KEK ids the database uses that the keyring does not hold, with how many rows each.
    missing: dict[str, int]
    # Data keys and webhook secrets tried, and how many of them did not open.
    tried: int
    unreadable: int

    @property
    def ok(self) -> bool:
        return not self.missing and self.unreadable == 0


def check(uow: UnitOfWork, vault: Vault, sample: int = CHECK_SAMPLE) -> KeyCheck:
    """Unwrap up to ``sample`` data keys per KEK the database uses, and open every unit's
    webhook secret.  A restored database with another keyring fails here, before any
    process writes to it (the worker would otherwise dead-letter every webhook)."""
    counts = usage(uow)
    missing = {kek_id: n for kek_id, n in counts.items() if kek_id not in vault.keyring.keks}
    tried = unreadable = 0
    for kek_id in sorted(set(counts) - set(missing)):
        for referral_id, wrapped in uow.referrals.wrapped_keys_under(kek_id, sample):
            tried += 1
            try:
                vault.rewrap(str(referral_id), wrapped)  # unwraps; the result is dropped
            except DecryptionError:
                unreadable += 1
    for unit in uow.units.with_secret():
        if unit.webhook_secret_kek_id in missing or unit.webhook_secret is None:
            continue
        tried += 1
        try:
            vault.open_secret(webhook_secret_context(unit.id), unit.webhook_secret)
        except DecryptionError:
            unreadable += 1
    return KeyCheck(missing, tried, unreadable)
