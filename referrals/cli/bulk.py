"""``referrals import``: referrals in bulk from a JSON-lines file.

One referral per line: the body of ``POST /api/v1/referrals`` (``"submit": true`` to submit
it at once) and ``"sending_unit"``, the referring unit it is opened for.  Lines are
validated by the API's own schema and made by the create use case's code, ``--batch-size``
lines per transaction, each batch with one audit event naming every referral it created.
A batch is all or nothing: a bad line is reported (line number and field, never the
value) and nothing of its batch is written; the batches before it stay.  The run says
where to go on from (``--start-line``), and each committed batch's event names its lines
(target ``import-lines``), so even a killed run can be resumed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from marshmallow import ValidationError

from referrals.api.schemas.referrals import ReferralCreate
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable
from referrals.auth.operator import Operator
from referrals.cli.common import (
    load_app,
    long_lived_heap_frozen,
    operator_of,
    operator_options,
    runtime_of,
    unrecorded,
)
from referrals.cli.root import main
from referrals.runtime import Runtime, operator_event
from referrals.services import bulk_import
from referrals.services.bulk_import import Line, LineError
from referrals.services.context import Context

DEFAULT_BATCH = 500


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Lines per transaction (all or nothing each).",
)
@click.option(
    "--start-line",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Resume at this line (as a stopped run told you).",
)
@operator_options(reason_required=True)
def import_referrals(
    path: Path, batch_size: int, start_line: int, actor: str | None, reason: str
) -> None:
    """Import referrals from JSON lines: validated, sealed and audited like the API's."""
    runtime = runtime_of(load_app())
    operator, checked = operator_of(actor, reason)
    schema = ReferralCreate()
    imported = 0
    next_line = start_line
    with path.open("rb") as source, long_lived_heap_frozen():
        size = path.stat().st_size
        with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
            for first, batch, problems, consumed in _batches(
                source, schema, start_line, batch_size
            ):
                if batch and not problems:
                    result = _commit(runtime, operator, checked, first, batch)
                    if isinstance(result, list) and result and isinstance(result[0], LineError):
                        problems = result
                    else:
                        imported += len(batch)
                if problems:
                    _stop(runtime, operator, checked, first, problems, imported)
                next_line = first + len(batch)
                bar.update(consumed)
    click.echo(f"{imported} referrals imported (lines {start_line} to {next_line - 1})")


def _batches(
    source: Any, schema: ReferralCreate, start_line: int, batch_size: int
) -> Iterator[tuple[int, list[Line], list[LineError], int]]:
    """(first line number, valid lines, schema errors, bytes read) per batch."""
    batch: list[Line] = []
    problems: list[LineError] = []
    consumed = 0
    first = start_line
    for number, raw in enumerate(source, start=1):
        consumed += len(raw)
        if number < start_line:
            continue
        if not raw.strip():
            # Blank lines count (numbers stay those of the file) but carry nothing.
            if not batch and not problems:
                first = number + 1
            continue
        parsed = _parse(number, raw, schema)
        if isinstance(parsed, Line):
            batch.append(parsed)
        else:
            problems.extend(parsed)
        if len(batch) + len(problems) >= batch_size:
            yield first, batch, problems, consumed
            batch, problems, consumed, first = [], [], 0, number + 1
    if batch or problems or consumed:
        yield first, batch, problems, consumed


def _parse(number: int, raw: bytes, schema: ReferralCreate) -> Line | list[LineError]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return [LineError(number, "", "not valid JSON")]
    if not isinstance(data, dict):
        return [LineError(number, "", "not a JSON object")]
    unit = data.pop("sending_unit", None)
    errors = []
    if not isinstance(unit, str) or not unit:
        errors.append(LineError(number, "sending_unit", "a referring unit's id is required"))
    try:
        body: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}
        errors += [LineError(number, field, text) for field, text in _flatten(messages)]
        return errors
    if errors:
        return errors
    submit = bool(body.pop("submit"))
    return Line(number=number, sending_unit=str(unit), submit=submit, body=body)


def _flatten(messages: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in messages.items():
        field = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _flatten(value, field)
        elif isinstance(value, list):
            yield field, "; ".join(str(item) for item in value)
        else:
            yield field, str(value)


def _commit(
    runtime: Runtime, operator: Operator, reason: str | None, first: int, batch: list[Line]
) -> list[LineError] | list[Any]:
    pending = operator_event(operator, AuditAction.REFERRALS_IMPORT, reason=reason)
    pending.target("import-lines", f"{first}-{batch[-1].number}")
    now = runtime.clock()
    contexts: dict[str, Context] = {}
    for line in batch:
        if line.sending_unit not in contexts:
            principal = bulk_import.youth_worker(operator.principal, line.sending_unit)
            contexts[line.sending_unit] = _at(runtime.context(principal), now)
    try:
        with runtime.unit_of_work(pending) as uow:
            return bulk_import.import_batch(uow, contexts, batch)
    except AuditUnavailable:
        raise unrecorded() from None


def _at(ctx: Context, now: datetime) -> Context:
    return replace(ctx, now=now)


def _stop(
    runtime: Runtime,
    operator: Operator,
    reason: str | None,
    first: int,
    problems: list[LineError],
    imported: int,
) -> None:
    pending = operator_event(operator, AuditAction.REFERRALS_IMPORT, reason=reason)
    pending.target("import-lines", f"{first}-{problems[-1].line}")
    runtime.record_refusal(pending, 422)
    for problem in problems:
        where = problem.field or "(line)"
        click.echo(f"line {problem.line}: {where}: {problem.message}", err=True)
    raise click.ClickException(
        f"nothing of the batch from line {first} on was written ({imported} referrals "
        f"before it were); fix the lines above and run again with --start-line {first}"
    )
