"""Bulk import of referrals (``referrals import``): many referrals per transaction.

Each referral is made by the create use case's own code (``referrals.open_new``): the same
sealing under a data key of its own, the same timeline, the same routing and outbox
announcement when it is submitted.  What a batch shares is its transaction, its rule set
(read once) and its audit event: one operator event per batch, naming every referral the
batch created (``audit_event_targets``), written by the same recorder in the same
transaction.  A batch is all or nothing: one bad line and none of the batch is written.

The rows are written without the ORM's unit of work: the use case builds its objects as
for the API (``flush=False``), but what it adds to the session or the outbox is held by
the batch (``_Batch``), never tracked by the session; the batch then writes the column
values of every new referral, its timeline events and outbox messages table by table
(``write``: a COPY on PostgreSQL, a Core executemany elsewhere, per set of columns), instead
of a flush that tracks each object.  The values are the objects' own, bound as an INSERT
binds them; tests/services/test_bulk_import.py compares every column with the rows the
API writes for the same body.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, Table, insert, inspect
from sqlalchemy.orm import Mapper, Session

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
    batch = _Batch(uow)
    _make(batch, contexts, lines, decide, units, created, errors)
    if errors:
        uow.session.rollback()
        return errors
    batch.insert()
    uow.audit_disclosed(created)
    uow.commit()
    return created


def _make(
    batch: _Batch,
    contexts: Mapping[str, Context],
    lines: Sequence[Line],
    decide: Any,
    units: dict[str, Unit | None],
    created: list[uuid.UUID],
    errors: list[LineError],
) -> None:
    """Every line's referral, made by the create use case, held by ``batch``."""
    uow = cast(UnitOfWork, batch)
    for line in lines:
        if line.sending_unit not in units:
            units[line.sending_unit] = batch.units.get(line.sending_unit)
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


class _Collected:
    """The ``add`` of a session or a repository, holding the new objects instead; every
    other attribute is the real one's."""

    def __init__(self, real: Any, objects: list[object]) -> None:
        self._real = real
        self._objects = objects

    def add(self, obj: object) -> None:
        self._objects.append(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Batch:
    """The unit of work as the create use case sees it while a batch is made: what it
    adds (referrals to the session, messages to the outbox) is held here, never tracked
    by the session, and written by ``insert``, table by table (``write``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.objects: list[object] = []
        self.session = _Collected(uow.session, self.objects)
        self.outbox = _Collected(uow.outbox, self.objects)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uow, name)

    def insert(self) -> None:
        rows: dict[type, list[dict[str, Any]]] = {model: [] for model in _ORDER}
        for obj in self.objects:
            if type(obj) not in (Referral, OutboxMessage):
                raise TypeError(f"the import does not write {type(obj).__name__} rows")
            values = _column_values(obj)
            if isinstance(obj, Referral):
                # The version the API's create leaves: 1 for the stored draft, one more
                # for its submission (a change of its own), i.e. one per timeline event.
                values["version"] = len(obj.events)
                for event in obj.events:
                    # The foreign key a flush copies from the relationship.
                    rows[TimelineEvent].append({**_column_values(event), "referral_id": obj.id})
            rows[type(obj)].append(values)
        for model in _ORDER:
            groups: dict[frozenset[str], list[dict[str, Any]]] = {}
            for values in rows[model]:
                groups.setdefault(frozenset(values), []).append(values)
            for group in groups.values():
                write(self._uow.session, cast(Table, model.__table__), group)


# The tables a batch writes, in the order their foreign keys need.
_ORDER = (Referral, TimelineEvent, OutboxMessage)


def write(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` (column values by name, each row with the same columns) into ``table``, as
    an INSERT of each would write them: by COPY on PostgreSQL, by one executemany
    elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, table, rows)
    else:
        session.execute(insert(table), rows)


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` (each with the same columns) into ``table`` by COPY, on PostgreSQL: the
    server takes them as one stream instead of one INSERT each (most of a batch's time in
    the database).  Each value goes through its column type's bind processing, as in an
    INSERT, and a column left unset takes its Python-side default, as in an INSERT; the
    driver escapes every value."""
    dialect = session.get_bind().dialect
    given = list(rows[0])
    defaulted = [
        column
        for column in table.columns
        if column.key not in rows[0] and column.default is not None
    ]
    columns = [table.c[name] for name in given] + defaulted
    processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
    preparer = dialect.identifier_preparer
    statement = "COPY {} ({}) FROM STDIN".format(
        preparer.format_table(table),
        ", ".join(preparer.format_column(column) for column in columns),
    )
    cursor = session.connection().connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for values in rows:
                row = [values[name] for name in given]
                row += [_default(column) for column in defaulted]
                copy.write_row(
                    [
                        value if process is None else process(value)
                        for value, process in zip(row, processors, strict=True)
                    ]
                )
    finally:
        cursor.close()


def _default(column: Column[Any]) -> Any:
    """The value an INSERT would give ``column`` when it is not set (a Python-side default;
    the import's objects carry no server-side or SQL-expression ones)."""
    default = cast(Any, column.default)
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # wrapped by SQLAlchemy to take an execution context
    raise TypeError(f"the import cannot compute the default of {column.table.name}.{column.key}")


def _column_values(obj: object) -> dict[str, Any]:
    """The column values set on a new object, by column name (unset ones take the
    column's default, as in a flush)."""
    present = obj.__dict__  # an instrumented object's loaded and set attributes
    return {column: present[key] for key, column in _columns(type(obj)) if key in present}


def _columns(model: type) -> tuple[tuple[str, str], ...]:
    """(attribute, column name) of each of ``model``'s columns."""
    found = _COLUMNS.get(model)
    if found is None:
        mapper: Mapper[Any] = inspect(model)
        found = _COLUMNS[model] = tuple((p.key, p.columns[0].key) for p in mapper.column_attrs)
    return found


_COLUMNS: dict[type, tuple[tuple[str, str], ...]] = {}
