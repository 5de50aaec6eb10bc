"""``referrals db``: schema migrations and the PostgreSQL duty separation."""

from __future__ import annotations

import click

from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable, record
from referrals.cli.common import audited, load_app, operator_options, runtime_of
from referrals.cli.root import main
from referrals.db import migrate


@main.group()
def db() -> None:
    """Database schema."""


@db.command("harden")
@click.option("--app-role", required=True, help="The database role the app connects as.")
@click.option(
    "--sealer-role",
    required=True,
    help="The database role `referrals audit seal` connects as (REFERRALS_SEALER_DATABASE_URL).",
)
@operator_options(reason_required=True)
def db_harden(app_role: str, sealer_role: str, actor: str | None, reason: str) -> None:
    """PostgreSQL: separate the audit duties (run as the migration owner).

    The app role may INSERT and SELECT events and only read seals and checkpoints; the
    sealer role may read events and INSERT seals and checkpoints, and nothing else."""
    runtime = runtime_of(load_app())
    url = runtime.settings.resolved_database_url(runtime.instance_path)
    if not url.startswith("postgresql"):
        raise click.ClickException("harden applies to PostgreSQL")
    _, pending = audited(actor, AuditAction.DB_HARDEN, reason, ("role", app_role))
    # The event commits with the grants, in the owner's transaction: both or neither.
    now = runtime.clock()
    try:
        migrate.harden(
            url,
            app_role,
            sealer_role=sealer_role,
            before_commit=lambda c: record(c, pending, 200, now),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{app_role}: INSERT and SELECT of audit events, SELECT of seals and checkpoints")
    click.echo(f"{sealer_role}: SELECT of audit events, INSERT and SELECT of seals and checkpoints")


@db.command("upgrade")
@operator_options(reason_required=False)
def db_upgrade(actor: str | None, reason: str | None) -> None:
    """Create or migrate the schema to the newest revision."""
    runtime = runtime_of(load_app())
    _, pending = audited(actor, AuditAction.DB_UPGRADE, reason, ("schema", "head"))
    migrate.upgrade(
        runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
    )
    # Recorded once the trail's own tables are there, which the first upgrade creates.
    try:
        with runtime.recorded(pending):
            pass
    except AuditUnavailable:
        raise click.ClickException(
            "the schema is upgraded, but the audit trail could not record it"
        ) from None
    click.echo("database is at the newest revision")
