"""Signed checkpoints published off the database, for an external witness.

``referrals audit seal --follow --publish DIR`` writes every checkpoint it signs as
``DIR/checkpoint-<seq>.json`` and replaces ``DIR/latest.json``.  DIR is meant to be
copied somewhere the database's users cannot write (a WORM bucket, another host, a
witness that keeps every file it has seen): a checkpoint kept there proves the chain's
head at that seq even after someone with full database access rewrites the chain.
Each file holds exactly what the signature covers, so a witness checks it with the
public key alone (``chain.checkpoint_payload``), without the database.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from referrals.audit import chain
from referrals.db.models import AuditCheckpoint

LATEST = "latest.json"


def document(checkpoint: AuditCheckpoint | chain.Checkpoint) -> dict[str, Any]:
    return {
        "type": chain.CHECKPOINT_TYPE,
        "seq": checkpoint.seq,
        "head": checkpoint.head.hex(),
        "created_at": _utc_text(checkpoint.created_at),
        "previous": checkpoint.previous.hex() if checkpoint.previous else None,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature.hex(),
    }


def write(directory: Path, checkpoint: AuditCheckpoint | chain.Checkpoint) -> Path:
    """Write the checkpoint's file (never overwritten) and point latest.json at it."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document(checkpoint), sort_keys=True, indent=2) + "\n"
    path = directory / f"checkpoint-{checkpoint.seq:010d}.json"
    _atomic(directory, path, text)
    _atomic(directory, directory / LATEST, text)
    return path


def _atomic(directory: Path, path: Path, text: str) -> None:
    """A reader sees the old file or the new one, never half of one."""
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> chain.Checkpoint:
    """A published checkpoint, as the verifier's type (for a witness's own checks)."""
    raw = json.loads(path.read_text("utf-8"))
    return chain.Checkpoint(
        seq=int(raw["seq"]),
        head=bytes.fromhex(raw["head"]),
        created_at=_parse_time(raw["created_at"]),
        previous=bytes.fromhex(raw["previous"]) if raw["previous"] else None,
        key_id=str(raw["key_id"]),
        signature=bytes.fromhex(raw["signature"]),
    )


def _utc_text(moment: datetime) -> str:
    """As the signed payload spells it: UTC, microseconds, a Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
