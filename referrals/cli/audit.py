"""``referrals audit``: sealing, checkpoints, export and verification of the trail."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from referrals.audit import chain, freshness, sealing
from referrals.audit import export as audit_export_rows
from referrals.audit import keys as audit_keys
from referrals.audit import publish as publish_checkpoint
from referrals.audit.sealer import Sealer
from referrals.cli.common import (
    instance_path_of,
    load_app,
    load_settings,
    long_lived_heap_frozen,
    metrics_options,
    runtime_of,
    serve_metrics,
)
from referrals.cli.root import main
from referrals.config import ConfigError
from referrals.db.models import AuditCheckpoint, AuditSeal
from referrals.runtime import Runtime, audit_public_keys

log = logging.getLogger(__name__)

# Events per transaction when `audit seal` seals everything pending.
SEAL_BATCH = 5000


@main.group()
def audit() -> None:
    """The audit trail's hash chain: sealing, checkpoints, verification."""


@audit.command("seal")
@click.option("--follow", is_flag=True, help="Keep sealing new events (the sealer process).")
@click.option(
    "--interval", type=float, default=None, help="Seconds between idle rounds [settings]."
)
@click.option(
    "--checkpoint-every",
    type=float,
    default=None,
    help="Seconds an unsigned event waits for its checkpoint at most [settings].",
)
@click.option(
    "--publish",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write each signed checkpoint here as JSON, for an external witness.",
)
@metrics_options
def audit_seal(
    follow: bool,
    interval: float | None,
    checkpoint_every: float | None,
    publish: Path | None,
    metrics_port: int | None,
    metrics_host: str | None,
) -> None:
    """Give committed audit events their places in the chain (and sign checkpoints).

    Connects as REFERRALS_SEALER_DATABASE_URL when set.  With --follow, a failed round is
    logged and retried after a backoff; the process exits non-zero only on a fault that is
    not the database's (a bug, a broken key)."""
    runtime = runtime_of(load_app())
    publisher = _publisher(publish) if publish else None
    _signing_key(runtime)  # a missing key is one line here, not a traceback in the loop
    if not follow:
        sessions = runtime.sealer_database().sessions
        tolerance = timedelta(seconds=runtime.settings.audit_time_tolerance)
        # Everything pending, one batch per transaction (an interrupted run keeps what
        # it sealed; the next one goes on from there).
        with sessions() as session, long_lived_heap_frozen():
            waiting = sealing.pending_count(session)
            session.rollback()
            with click.progressbar(length=waiting, label="sealing", file=sys.stderr) as bar:
                sealed = sealing.seal_all(
                    session,
                    runtime.clock,
                    limit=SEAL_BATCH,
                    tolerance=tolerance,
                    progress=bar.update,
                )
        with sessions() as session:
            row = sealing.checkpoint(session, _signing_key(runtime), runtime.clock)
        if row is not None and publisher is not None:
            publisher(row)
        click.echo(f"{sealed} events sealed")
        return
    sealer = runtime.sealer(
        interval=interval, checkpoint_interval=checkpoint_every, publish=publisher
    )
    serve_metrics(runtime, metrics_host, metrics_port)
    _stop_on_signals(sealer.stop)
    try:
        sealer.run()
    except Exception as exc:
        log.critical("audit sealer stopped", exc_info=True)
        raise click.ClickException(
            f"the audit sealer stopped on {type(exc).__name__}; see the log"
        ) from None


def _publisher(directory: Path) -> Callable[[AuditCheckpoint], None]:
    def write(row: AuditCheckpoint) -> None:
        publish_checkpoint.write(directory, row)

    return write


def seal_forever(sealer: Sealer) -> None:
    """The quickstart's sealer thread: the same loop as `audit seal --follow`."""
    try:
        sealer.run()
    except Exception:
        # The server goes on (its requests are still recorded); /readyz reports the
        # sealer as behind once events wait longer than the allowed lag.
        log.critical("audit sealer stopped", exc_info=True)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT end the loop after the round in hand: nothing half-written."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@audit.command("export")
@click.option("--since", type=click.DateTime(), default=None, help="UTC; default: all.")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--output", type=click.File("w"), default="-", help="Default: standard output.")
def audit_export(since: datetime | None, fmt: str, output: IO[str]) -> None:
    """Export sealed and pending events as JSON lines, oldest first (for archives)."""
    runtime = runtime_of(load_app())
    start = since.replace(tzinfo=UTC) if since else None
    with runtime.database.sessions() as session:
        total = audit_export_rows.count(session, start)
        with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
            for item in audit_export_rows.stream(session, start):
                output.write(json.dumps(item, default=str, sort_keys=True) + "\n")
                bar.update(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain head now."""
    runtime = runtime_of(load_app())
    with runtime.sealer_database().sessions() as session:
        row = sealing.checkpoint(session, _signing_key(runtime), runtime.clock)
    click.echo(f"checkpoint at seq {row.seq}" if row else "no new events since the last checkpoint")


@audit.command("keygen")
def audit_keygen() -> None:
    """Create the checkpoint signing key at REFERRALS_AUDIT_SIGNING_KEY_FILE (0600, never
    overwritten) and print its public key, for REFERRALS_AUDIT_PUBLIC_KEYS.

    Needs no database: run it once where the sealer's secret is made."""
    settings = load_settings()
    path = settings.resolved_audit_signing_key_file(instance_path_of(settings))
    try:
        key = chain.create_signing_key_file(path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; it is never overwritten") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path} ({exc.strerror})") from None
    public = key.public_key()
    click.echo(f"{chain.public_key_id(public)}\t{audit_keys.encode_public_key(public)}")


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the signing key's public key, for REFERRALS_AUDIT_PUBLIC_KEYS and witnesses."""
    public = _signing_key(runtime_of(load_app())).public_key()
    click.echo(f"{chain.public_key_id(public)}\t{audit_keys.encode_public_key(public)}")


def _signing_key(runtime: Runtime) -> Ed25519PrivateKey:
    try:
        return runtime.audit_signing_key
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the chain and every checkpoint; exit 1 naming the first problem, or saying
    that events wait for their seal or checkpoint longer than allowed (a stalled sealer)."""
    runtime = runtime_of(load_app())
    limits = runtime.freshness_limits()
    # The app's objects outlive the verification: set them aside from the cyclic garbage
    # collector meanwhile.  Its full passes over them (set off by the verifier's own
    # short-lived rows) took longer than reading and hashing 20,000 events.
    gc.freeze()
    try:
        with runtime.database.read_session() as session:
            length = session.scalar(select(func.max(AuditSeal.seq))) or 0
            with click.progressbar(length=length, label="verifying", file=sys.stderr) as bar:
                result = sealing.verify(session, audit_public_keys(runtime), progress=bar.update)
            fresh = freshness.judge(sealing.backlog(session), runtime.clock(), limits)
    finally:
        gc.unfreeze()
    click.echo(
        f"{result.sealed} sealed events, {result.checkpoints} checkpoints, "
        f"{result.pending} awaiting sealing"
    )
    if result.finding is not None:
        finding = result.finding
        raise click.ClickException(f"{finding.problem} at seq {finding.seq}: {finding.detail}")
    if result.flagged:
        listed = ", ".join(f"seq {f.seq} ({f.flag})" for f in result.flagged)
        raise click.ClickException(
            f"the chain is intact, but the sealer flagged {len(result.flagged)} events whose "
            f"recorded_at was not close to when it first saw them: {listed}; review them"
        )
    if not fresh.ok:
        raise click.ClickException(
            freshness.explain(fresh, limits) + "; is `referrals audit seal --follow` running?"
        )
    click.echo("ok")
