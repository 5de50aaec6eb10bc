"""The ``referrals`` command group every subcommand module attaches to."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """referrals: case management for youth-at-risk referrals."""
