"""The ``referrals`` command: database, seed data, development tokens, spec, serving."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask

from referrals.app import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Principal, Role
from referrals.config import ConfigError
from referrals.db import migrate
from referrals.runtime import Runtime
from referrals.services import units
from referrals.services.context import Context

SPEC_PATH = Path("openapi") / "openapi.json"
# Who each printed development token is for, in the embedded demo.
DEMO_TOKENS: tuple[tuple[Role, str | None], ...] = (
    (Role.YOUTH_WORKER, "ungdomsjouren"),
    (Role.CASEWORKER, "norrmalm"),
    (Role.CASEWORKER, "sodermalm"),
    (Role.AUDITOR, None),
    (Role.ADMIN, None),
)


def _app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


@click.group()
def main() -> None:
    """referrals: case management for youth-at-risk referrals."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    runtime = _runtime(_app())
    migrate.upgrade(runtime.settings.resolved_database_url(runtime.instance_path))
    click.echo("database is at the newest revision")


@main.group()
def seed() -> None:
    """Seed data."""


@seed.command("demo")
def seed_demo() -> None:
    """The demo units: ungdomsjouren, three district offices and central intake."""
    created = _seed_demo(_runtime(_app()))
    click.echo(f"{created} demo units created")


def _seed_demo(runtime: Runtime) -> int:
    system = Principal(issuer="urn:referrals:cli", subject="seed", roles=frozenset({Role.ADMIN}))
    ctx = Context(system, runtime.clock(), runtime.deadlines, runtime.settings.default_intake_unit)
    with runtime.unit_of_work() as uow:
        return units.seed_demo(uow, ctx)


@main.command("dev-token")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", default=None, help="The caller's unit (youth workers, caseworkers).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def dev_token(role: str, unit: str | None, ttl: int) -> None:
    """Mint a development access token (refused outside development)."""
    runtime = _runtime(_app())
    click.echo(_mint(runtime, Role(role), unit, ttl))


def _mint(runtime: Runtime, role: Role, unit: str | None, ttl: int) -> str:
    settings = runtime.settings
    if settings.is_production or not settings.dev_tokens:
        raise click.ClickException("development tokens are disabled in this environment")
    key = devissuer.load_or_create_key(runtime.instance_path)
    return devissuer.mint(key, role=role, unit=unit, audience=settings.oidc_audience, lifetime=ttl)


@main.group()
def openapi() -> None:
    """The committed OpenAPI document."""


@openapi.command("write")
@click.option("--output", type=click.Path(path_type=Path), default=SPEC_PATH, show_default=True)
def openapi_write(output: Path) -> None:
    """Write the spec the code generates to openapi/openapi.json."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_spec(_app()))
    click.echo(f"wrote {output}")


def render_spec(app: Flask) -> str:
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve with the development server (production: gunicorn, see deploy/)."""
    app = _app()
    if _runtime(app).settings.is_production:
        raise click.ClickException("use gunicorn in production (deploy/gunicorn.conf.py)")
    app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--ttl", default=8 * 3600, show_default=True, help="Token lifetime in seconds.")
def quickstart(host: str, port: int, ttl: int) -> None:
    """Migrate, seed the demo units, print a token per role, and serve."""
    app = _app()
    runtime = _runtime(app)
    if runtime.settings.is_production:
        raise click.ClickException("quickstart is for development only")
    migrate.upgrade(runtime.settings.resolved_database_url(runtime.instance_path))
    _seed_demo(runtime)
    click.echo(f"referrals is starting on http://{host}:{port}  (API docs: /docs)\n")
    click.echo('Development tokens (export one, then: curl -H "Authorization: Bearer $TOKEN" ...):')
    for role, unit in DEMO_TOKENS:
        name = f"{role.value.upper()}_{unit.upper()}" if unit else role.value.upper()
        click.echo(f"\n{name}_TOKEN={_mint(runtime, role, unit, ttl)}")
    click.echo()
    app.run(host=host, port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
