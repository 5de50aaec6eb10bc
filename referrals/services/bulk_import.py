"""Bulk import of referrals (``referrals import``): many referrals per transaction.

Each referral is made by the create use case's own code (``referrals.open_new``): the same
sealing under a data key of its own, the same timeline, the same routing and outbox
announcement when it is submitted.  What a batch shares is its transaction, its rule set
(read once) and its audit event: one operator event per batch, naming every referral the
batch created (``audit_event_targets``), written by the same recorder in the same
transaction.  A batch is all or nothing: one bad line and none of the batch is written.

The rows are written without the ORM's unit of work: the use case builds its objects as
for the API (``flush=False``, no autoflush while the batch is made), and the batch then
inserts the column values of every new referral, timeline event and outbox message with
one Core executemany per table (``_insert_new``), instead of a flush that tracks each
object.  The values are the objects' own, so each row is the one a flush would write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, inspect
from sqlalchemy.orm import Session

from referrals.auth.operator import CLI_ISSUER
from referrals.auth.principal import Principal, Role
from referrals.db.models import OutboxMessage, Referral, TimelineEvent, Unit
from referrals.domain.codes import UnitKind
from referrals.domain.errors import DomainError
from referrals.services import referrals, routing
from referrals.services.context import Context
from referrals.services.errors import ServiceError
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
    with uow.session.no_autoflush:
        _make(uow, contexts, lines, decide, units, created, errors)
    if errors:
        uow.session.rollback()
        return errors
    _insert_new(uow.session)
    uow.audit_disclosed(created)
    uow.commit()
    return created


def _make(
    uow: UnitOfWork,
    contexts: Mapping[str, Context],
    lines: Sequence[Line],
    decide: Any,
    units: dict[str, Unit | None],
    created: list[uuid.UUID],
    errors: list[LineError],
) -> None:
    """Every line's referral, made by the create use case, pending in the session."""
    for line in lines:
        if line.sending_unit not in units:
            units[line.sending_unit] = uow.units.get(line.sending_unit)
        unit = units[line.sending_unit]
        if unit is None or unit.kind != UnitKind.REFERRER:
            errors.append(LineError(line.number, "sending_unit", UNKNOWN_UNIT))
            continue
        try:
            row, _ = referrals.open_new(
                uow,
                contexts[line.sending_unit],
                line.body,
                submit=line.submit,
                decide=decide,
                flush=False,
            )
        except (ServiceError, DomainError) as exc:
            errors.append(LineError(line.number, exc.field or "", exc.message))
            continue
        created.append(row.id)


# The tables a batch writes, in the order their foreign keys need.
_ORDER = (Referral, TimelineEvent, OutboxMessage)


def _insert_new(session: Session) -> None:
    """Insert the session's pending objects with one executemany per table and key set,
    then let the session forget them (they are written; the batch commits next)."""
    pending = list(session.new)
    for obj in pending:
        if isinstance(obj, Referral):
            for event in obj.events:
                # The foreign key a flush copies from the relationship.
                event.referral_id = obj.id
    rows: dict[type, list[dict[str, Any]]] = {model: [] for model in _ORDER}
    for obj in pending:
        if type(obj) not in rows:
            raise TypeError(f"the import does not write {type(obj).__name__} rows")
        values = _column_values(obj)
        if isinstance(obj, Referral):
            # What the ORM's version counter sets on the INSERT of a new row.
            values.setdefault("version", 1)
        rows[type(obj)].append(values)
    # Forgotten before the statements: none of them may flush the objects as well.
    session.expunge_all()
    for model in _ORDER:
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for values in rows[model]:
            groups.setdefault(frozenset(values), []).append(values)
        for group in groups.values():
            session.execute(insert(cast(Table, model.__table__)), group)


def _column_values(obj: object) -> dict[str, Any]:
    """The column values set on a new object, by column name (unset ones take the
    column's default, as in a flush)."""
    state = inspect(obj)
    mapper = state.mapper
    present = state.dict
    return {
        prop.columns[0].key: present[prop.key]
        for prop in mapper.column_attrs
        if prop.key in present
    }
