"""Keyrings for tests: clearly test-only key material, generated per run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from referrals.audit.chain import create_signing_key_file
from referrals.crypto.keyring import KeyringFile


def production_keyring() -> str:
    """A keyring document as production would mount it (not marked development)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "keyring.json"
        KeyringFile(path).create(development=False)
        return path.read_text()


def audit_signing_key(directory: Path) -> Path:
    """A checkpoint signing key file as production would mount it."""
    path = directory / "audit-signing-key.pem"
    if not path.exists():
        create_signing_key_file(path)
    return path
