"""The ``referrals`` command, one module per command group.

``root`` holds the group; importing each module below attaches its commands to it."""

from referrals.cli import audit, bulk, database, keys, privacy, retention, seeds, serving
from referrals.cli.root import main
from referrals.cli.serving import render_spec

__all__ = [
    "audit",
    "bulk",
    "database",
    "keys",
    "main",
    "privacy",
    "render_spec",
    "retention",
    "seeds",
    "serving",
]
