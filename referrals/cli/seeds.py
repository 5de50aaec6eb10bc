"""``referrals seed``: units and routing rules from packaged or local files."""

from __future__ import annotations

import json
from pathlib import Path

import click
from marshmallow import ValidationError

from referrals.api.schemas.units import SeedDocument
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable, PendingAudit
from referrals.auth.operator import Operator
from referrals.cli.common import audited, load_app, operator_options, runtime_of, unrecorded
from referrals.cli.root import main
from referrals.domain.errors import DomainError
from referrals.runtime import Runtime
from referrals.services import seeding
from referrals.services.errors import ServiceError


@main.group()
def seed() -> None:
    """Seed data."""


@seed.command("demo")
@operator_options(reason_required=False)
def seed_demo(actor: str | None, reason: str | None) -> None:
    """The demo units (ungdomsjouren, three district offices, central intake) and rules."""
    audit_step = audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "demo"))
    _report_seed(apply_seed(runtime_of(load_app()), seeding.packaged("demo"), *audit_step))


@seed.command("stockholm")
@operator_options(reason_required=False)
def seed_stockholm(actor: str | None, reason: str | None) -> None:
    """Stockholm's 13 district social offices, ungdomsjouren, central intake, and rules
    routing each district to its office (webhook URLs made up and disabled)."""
    audit_step = audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "stockholm"))
    _report_seed(apply_seed(runtime_of(load_app()), seeding.packaged("stockholm"), *audit_step))


@seed.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_options(reason_required=True)
def seed_file(path: Path, actor: str | None, reason: str) -> None:
    """An organisation's own units and rules, in the shape of referrals/seeds/*.json."""
    audit_step = audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "file"))
    try:
        document = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path} is not a JSON document: {exc}") from None
    _report_seed(apply_seed(runtime_of(load_app()), document, *audit_step))


def apply_seed(
    runtime: Runtime, raw: object, operator: Operator, pending: PendingAudit
) -> seeding.Seeded:
    try:
        document = SeedDocument().load(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.ClickException(f"invalid seed document: {exc.messages}") from None
    try:
        with runtime.unit_of_work(audit=pending) as uow:
            return seeding.apply(uow, runtime.context(operator.principal), document)
    except (ServiceError, DomainError) as exc:
        runtime.record_refusal(pending, exc.status if isinstance(exc, ServiceError) else 422)
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.message}{where}") from None
    except AuditUnavailable:
        raise unrecorded() from None


def _report_seed(seeded: seeding.Seeded) -> None:
    click.echo(f"{seeded.units_created} units created")
    if seeded.ruleset_version is None:
        click.echo("routing rules unchanged")
    else:
        click.echo(f"routing rules installed as rule-set version {seeded.ruleset_version}")
