"""``referrals privacy record``: the record of processing (GDPR Art. 30), from the code."""

from __future__ import annotations

import json
from pathlib import Path

import click

from referrals.cli.common import load_app, runtime_of
from referrals.cli.root import main
from referrals.services import processing_record


@main.group()
def privacy() -> None:
    """Data protection documents derived from the service itself."""


@privacy.command("record")
@click.option(
    "--format",
    "form",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def privacy_record(form: str, output: Path | None) -> None:
    """Write the record of processing: data subjects and personal data (the sealed fields),
    purposes and legal bases (the codes), recipients (the units), retention (the settings
    in force), transfers (none) and security measures."""
    runtime = runtime_of(load_app())
    s = runtime.settings
    extra = {
        "delivered webhooks (ids and codes only)": f"{s.outbox_retention_days} days",
        "web sessions": f"at most {s.web_session_lifetime} seconds",
        "audit trail (no personal data in plaintext)": "kept; it verifies after erasure",
    }
    try:
        with runtime.unit_of_work() as uow:
            record = processing_record.build(
                uow, runtime.retention_policy(), extra_retention=extra, now=runtime.clock()
            )
    except processing_record.UndescribedField as exc:
        raise click.ClickException(str(exc)) from None
    text = (
        json.dumps(record, indent=2, ensure_ascii=False) + "\n"
        if form == "json"
        else processing_record.markdown(record)
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"record of processing written to {output}")
