"""``referrals retention report``: what will be erased soon, and what is held."""

from __future__ import annotations

import json

import click

from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable
from referrals.cli.common import audited, load_app, runtime_of, unrecorded
from referrals.cli.root import main
from referrals.services import retention as retention_cases
from referrals.services.errors import ServiceError


@main.group()
def retention() -> None:
    """Retention (gallring) of closed referrals, and legal holds."""


@retention.command("report")
@click.option("--days", type=click.IntRange(0, 3650), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
@click.option("--actor", default=None, help="Who asks, when the OS account is shared.")
def retention_report(days: int, as_json: bool, actor: str | None) -> None:
    """Referrals whose retention period ends within DAYS (ids, statuses, dates: no personal
    data), and the legal holds.  Recorded in the audit trail like the API's report."""
    runtime = runtime_of(load_app())
    operator, pending = audited(actor, AuditAction.PRIVACY_RETENTION, None, None)
    try:
        with runtime.unit_of_work(audit=pending) as uow:
            report = retention_cases.report(
                uow, runtime.context(operator.principal), runtime.retention_policy(), days
            )
    except ServiceError as exc:
        runtime.record_refusal(pending, exc.status)
        raise click.ClickException(exc.message) from None
    except AuditUnavailable:
        raise unrecorded() from None
    if as_json:
        click.echo(json.dumps(report, default=str, indent=2))
        return
    click.echo(f"due within {days} days: {report['due_count']}")
    for item in report["due"]:
        state = "past due" if item["past_due"] else "due"
        click.echo(
            f"{item['referral_id']}\t{item['status']}\t{state}\t{item['due_at'].isoformat()}"
        )
    click.echo(f"on legal hold: {report['held_count']}")
    for item in report["held"]:
        click.echo(
            f"{item['referral_id']}\t{item['status']}\t{item['reason_code']}\t"
            f"{item['placed_at'].isoformat()}"
        )
