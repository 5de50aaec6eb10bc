"""Bulk import of referrals (``referrals import``): many referrals per transaction.

Each referral is made by the create use case's own code (``referrals.open_new``): the same
sealing under a data key of its own, the same timeline, the same routing and outbox
announcement when it is submitted.  What a batch shares is its transaction, its rule set
(read once) and its audit event: one operator event per batch, naming every referral the
batch created (``audit_event_targets``), written by the same recorder in the same
transaction.  A batch is all or nothing: one bad line and none of the batch is written.

The rows are written as the API's create writes its one referral (services/new_rows.py):
held while the batch is made, then table by table (a COPY on PostgreSQL, a Core
executemany elsewhere), instead of a flush that tracks each object; the values are the
objects' own, bound as an INSERT binds them.  tests/services/test_bulk_import.py compares
every column with the rows the API writes for the same body.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from referrals.auth.operator import CLI_ISSUER
from referrals.auth.principal import Principal, Role
from referrals.db.models import Unit
from referrals.domain.codes import UnitKind
from referrals.domain.errors import DomainError
from referrals.services import referrals, routing
from referrals.services.context import Context
from referrals.services.errors import ServiceError
from referrals.services.new_rows import NewRows
from referrals.services.uow import UnitOfWork

UNKNOWN_UNIT = "not a registered referring unit"


@dataclass(frozen=True)
class LineError:
    """Line ``line`` of the input is at fault, at ``field`` (a JSON path); ``message`` names
    the rule, never the value."""

    line: int
    field: str
    message: str


@dataclass(frozen=True)
class Line:
    number: int
    sending_unit: str
    submit: bool
    body: Mapping[str, Any]


def youth_worker(operator: Principal, unit: str) -> Principal:
    """Whom an imported referral is opened as: the operator, as a youth worker of the line's
    sending unit (the unit must be a registered referring unit, as for the API)."""
    return Principal(
        issuer=CLI_ISSUER,
        subject=operator.subject,
        client_id=operator.client_id,
        roles=frozenset({Role.YOUTH_WORKER}),
        unit=unit,
    )


def import_batch(
    uow: UnitOfWork, contexts: Mapping[str, Context], lines: Sequence[Line]
) -> list[LineError] | list[uuid.UUID]:
    """Create every line's referral and commit them together with the batch's audit event;
    or, if any line breaks a rule, commit nothing and return every such line's error.
    ``contexts`` holds one context per sending unit (all with the same ``now``)."""
    decide = routing.decider(uow)
    created: list[uuid.UUID] = []
    errors: list[LineError] = []
    # Strong references: the session's identity map alone would let a unit be collected
    # and looked up (with an autoflush) again for the next line.
    units: dict[str, Unit | None] = {}
    batch = NewRows(uow)
    _make(batch, contexts, lines, decide, units, created, errors)
    if errors:
        uow.session.rollback()
        return errors
    batch.insert()
    uow.audit_disclosed(created)
    uow.commit()
    return created


def _make(
    batch: NewRows,
    contexts: Mapping[str, Context],
    lines: Sequence[Line],
    decide: Any,
    units: dict[str, Unit | None],
    created: list[uuid.UUID],
    errors: list[LineError],
) -> None:
    """Every line's referral, made by the create use case, held by ``batch``."""
    for line in lines:
        if line.sending_unit not in units:
            units[line.sending_unit] = batch.units.get(line.sending_unit)
        unit = units[line.sending_unit]
        if unit is None or unit.kind != UnitKind.REFERRER:
            errors.append(LineError(line.number, "sending_unit", UNKNOWN_UNIT))
            continue
        try:
            row, _ = referrals.open_new(
                batch, contexts[line.sending_unit], line.body, submit=line.submit, decide=decide
            )
        except (ServiceError, DomainError) as exc:
            errors.append(LineError(line.number, exc.field or "", exc.message))
            continue
        created.append(row.id)
