"""The vault follows the keyring a running worker was started with, and its rotations."""

from __future__ import annotations

from pathlib import Path

from referrals.crypto.keyring import KeyringFile
from referrals.services.vault import Vault


def test_a_running_worker_wraps_new_keys_under_a_kek_rotated_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyringFile(path).create(development=True)
    vault = Vault(KeyringFile(path))  # the long-running worker
    assert vault.new_sealer_for_id("r-1").kek_id == "kek-1"

    KeyringFile(path).rotate()  # the operator, in another process

    assert vault.new_sealer_for_id("r-2").kek_id == "kek-2"


def test_a_key_wrapped_before_rotation_opens_in_a_worker_started_after(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyringFile(path).create(development=True)
    before = Vault(KeyringFile(path)).new_sealer_for_id("r-1")
    KeyringFile(path).rotate()
    after = Vault(KeyringFile(path))
    wrapped, kek_id = after.rewrap("r-1", before.wrapped)
    assert kek_id == "kek-2"
    assert wrapped != before.wrapped
