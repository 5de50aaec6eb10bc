"""Serving: the worker, development tokens, the spec, the development server, quickstart."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import click
from flask import Flask

from referrals.audit.actions import AuditAction
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.cli.audit import seal_forever
from referrals.cli.common import audited, load_app, metrics_options, runtime_of, serve_metrics
from referrals.cli.root import main
from referrals.cli.seeds import apply_seed
from referrals.db import migrate
from referrals.runtime import Runtime
from referrals.services import seeding
from referrals.worker import Worker

log = logging.getLogger(__name__)


SPEC_PATH = Path("openapi") / "openapi.json"
# Who each printed development token is for, in the embedded demo.
DEMO_TOKENS: tuple[tuple[Role, str | None], ...] = (
    (Role.YOUTH_WORKER, "ungdomsjouren"),
    (Role.CASEWORKER, "norrmalm"),
    (Role.CASEWORKER, "sodermalm"),
    (Role.AUDITOR, None),
    (Role.ADMIN, None),
)


@main.command()
@click.option("--once", is_flag=True, help="One round, then exit (cron, tests).")
@click.option("--interval", type=float, default=None, help="Seconds between rounds.")
@metrics_options
def worker(
    once: bool, interval: float | None, metrics_port: int | None, metrics_host: str | None
) -> None:
    """Deliver webhooks from the outbox and escalate overdue referrals.

    Run several for throughput: they never take the same message at once."""
    runtime = runtime_of(load_app())
    job = Worker(runtime)
    if not once:
        serve_metrics(runtime, metrics_host, metrics_port)
    if once:
        try:
            result = job.run_round()
        finally:
            job.sender.close()
        click.echo(
            f"escalated {result.escalated}, delivered {result.delivered}, failed "
            f"{result.failed}, dead {result.dead}, skipped {result.skipped}"
        )
        return
    job.run(interval or runtime.settings.worker_interval)


@main.command("dev-token")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", default=None, help="The caller's unit (youth workers, caseworkers).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
@click.option(
    "--subject",
    default=None,
    help="The person (``sub``); default: one per role and unit, e.g. dev-caseworker@norrmalm.",
)
def dev_token(role: str, unit: str | None, ttl: int, subject: str | None) -> None:
    """Mint a development access token (refused outside development)."""
    runtime = runtime_of(load_app())
    click.echo(mint_token(runtime, Role(role), unit, ttl, subject=subject))


def mint_token(
    runtime: Runtime, role: Role, unit: str | None, ttl: int, *, subject: str | None = None
) -> str:
    settings = runtime.settings
    if settings.is_production or not settings.dev_tokens:
        raise click.ClickException("development tokens are disabled in this environment")
    key = devissuer.load_or_create_key(runtime.instance_path)
    return devissuer.mint(
        key, role=role, unit=unit, audience=settings.oidc_audience, lifetime=ttl, subject=subject
    )


@main.group()
def openapi() -> None:
    """The committed OpenAPI document."""


@openapi.command("write")
@click.option("--output", type=click.Path(path_type=Path), default=SPEC_PATH, show_default=True)
def openapi_write(output: Path) -> None:
    """Write the spec the code generates to openapi/openapi.json."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_spec(load_app(development_unless_set=True)))
    click.echo(f"wrote {output}")


def render_spec(app: Flask) -> str:
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def run_development_server(app: Flask, host: str, port: int) -> None:
    # Werkzeug's own request lines carry raw URLs (query strings included); the app
    # writes its own JSON request line with the route template instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve with the development server (production: gunicorn, see deploy/)."""
    app = load_app()
    if runtime_of(app).settings.is_production:
        raise click.ClickException("use gunicorn in production (deploy/gunicorn.conf.py)")
    run_development_server(app, host, port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--ttl", default=8 * 3600, show_default=True, help="Token lifetime in seconds.")
def quickstart(host: str, port: int, ttl: int) -> None:
    """Migrate, seed the demo units, print a token per role, and serve (development)."""
    app = load_app(development_unless_set=True)
    runtime = runtime_of(app)
    if runtime.settings.is_production:
        raise click.ClickException("quickstart is for development only")
    migrate.upgrade(
        runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
    )
    apply_seed(
        runtime,
        seeding.packaged("demo"),
        *audited(None, AuditAction.SEED_APPLY, "quickstart", ("seed", "demo")),
    )
    # Production runs `referrals worker` as processes of their own; the demo delivers and
    # escalates from a thread.
    threading.Thread(target=Worker(runtime).run, args=(1.0,), daemon=True).start()
    # Production runs `referrals audit seal --follow` as its own process; the demo seals
    # from a thread so the chain stays current without a second command.
    threading.Thread(target=seal_forever, args=(runtime.sealer(),), daemon=True).start()
    click.echo(f"referrals is starting on http://{host}:{port}  (API docs: /docs)")
    click.echo(f"Web pages: http://{host}:{port}/app/  (development: sign in as a demo user)\n")
    click.echo('Development tokens (export one, then: curl -H "Authorization: Bearer $TOKEN" ...):')
    for role, unit in DEMO_TOKENS:
        name = f"{role.value.upper()}_{unit.upper()}" if unit else role.value.upper()
        click.echo(f"\n{name}_TOKEN={mint_token(runtime, role, unit, ttl)}")
    click.echo()
    run_development_server(app, host, port)
