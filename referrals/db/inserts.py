"""New rows written table by table, without the ORM's unit of work.

The create use case and the bulk import build their objects (a referral, its timeline,
its outbox message) as ORM instances, but write them here: the column values set on each
object (``column_values``), one statement per table (``insert_rows``), instead of a
flush that tracks every object and sends the draft's INSERT and its submission's UPDATE
separately.  The values are bound as an INSERT binds them; a column left unset takes its
Python-side default, as in an INSERT.  The statement of each table and set of columns
is compiled once (``execute_insert``; the audit recorder writes its events with it too),
and on PostgreSQL a create's few INSERTs go in one round trip (``pipelined``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, Connection, Dialect, Table, bindparam, insert, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapper, Session

from referrals.db import first_write

# From this many rows on, PostgreSQL takes them by COPY: one stream instead of one
# INSERT each (most of an import batch's time in the database).  Below it, one INSERT
# statement is one round trip, where COPY needs two (start, then data and end).
COPY_FROM = 16

# The connection ``pipelined`` holds in a psycopg pipeline, in this thread or task.  Not
# kept in the connection's ``info``: a connection lost inside the block is invalidated,
# and reading its ``info`` then raises, hiding the disconnect (503) behind a 500.
_PIPELINED: ContextVar[Connection | None] = ContextVar("referrals_pipelined", default=None)


def insert_rows(
    session: Session, table: Table, rows: list[dict[str, Any]], *, copy_from: int = COPY_FROM
) -> None:
    """``rows`` (column values by name, each row with the same columns) into ``table``, as
    an INSERT of each would write them: by COPY on PostgreSQL from ``copy_from`` rows on,
    otherwise by one INSERT (an executemany for several rows)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= copy_from:
        _copy(session, table, rows)
    else:
        execute_insert(session.connection(), table, rows)


def execute_insert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any] | None = None,
) -> None:
    """One INSERT of ``rows`` (each with the same columns; several rows are one
    executemany, or in a pipeline one VALUES list), exactly as Core's ``insert(table)``
    would send it: the statement
    compiled once per table, columns and dialect, each value converted by its column's
    type, an unset column given its Python-side default.  Core compiled the statement's
    cache key, set up an execution context and looked up the defaults for every call: on
    a create+submit's four INSERTs that was more than the round trips
    (tests/benchmarks/bench_naive.py).  ``options`` are the statement's execution
    options (``COMMITS_ALONE``)."""
    compiled = _compiled(table, tuple(rows[0]), connection.dialect)
    if len(rows) == 1:
        connection.exec_driver_sql(compiled.sql, compiled.parameters(rows[0]), options)
    elif _PIPELINED.get() is connection:
        # One statement with a VALUES list per row: psycopg's executemany opens a
        # pipeline of its own, and one nested in a pipeline holding queued statements
        # syncs first (a round trip).  A pipeline holds few rows (below COPY_FROM).
        sql, positions = _many_values(table, compiled, connection.dialect, len(rows))
        values = {
            f"{name}_m{i}": value
            for i, row in enumerate(rows)
            for name, value in compiled.values(row).items()
        }
        parameters = values if positions is None else tuple(values[n] for n in positions)
        connection.exec_driver_sql(sql, parameters, options)
    else:
        connection.exec_driver_sql(compiled.sql, [compiled.parameters(r) for r in rows], options)


@dataclass(frozen=True)
class _CompiledInsert:
    """``INSERT INTO table (columns)`` in one dialect's SQL and parameter style."""

    sql: str
    # The columns written: the rows' own, then the defaulted ones.
    columns: tuple[str, ...]
    # Parameter names in order for a positional style (SQLite's ``?``); None when named.
    positions: tuple[str, ...] | None
    # Each column's conversion to what the driver takes (a UUID to text on SQLite, a list
    # to JSON), from the column's own type.
    convert: dict[str, Callable[[Any], Any]]
    # Columns the rows leave unset that have a Python-side default, as an INSERT fills.
    defaulted: tuple[Column[Any], ...]

    def values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row``'s values as the driver takes them, by column, defaults filled in."""
        values = dict(row)
        for column in self.defaulted:
            values[column.key] = _default(column)
        for name, convert in self.convert.items():
            values[name] = convert(values[name])
        return values

    def parameters(self, row: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        values = self.values(row)
        return values if self.positions is None else tuple(values[n] for n in self.positions)


# By the table and the dialect themselves (not their names): two engines of one dialect
# may bind differently (a JSON serializer of their own), and a name is not a table.
_COMPILED: dict[tuple[Table, tuple[str, ...], Dialect], _CompiledInsert] = {}


def _compiled(table: Table, given: tuple[str, ...], dialect: Dialect) -> _CompiledInsert:
    key = (table, given, dialect)
    compiled = _COMPILED.get(key)
    if compiled is None:
        defaulted = tuple(
            column
            for column in table.columns
            if column.key not in given and column.default is not None
        )
        names = [*given, *(column.key for column in defaulted)]
        statement = insert(table).compile(dialect=dialect, column_keys=names)
        convert: dict[str, Callable[[Any], Any]] = {}
        for name in names:
            column_type = table.c[name].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                convert[name] = processor
        positions = statement.positiontup
        compiled = _CompiledInsert(
            str(statement),
            tuple(names),
            tuple(positions) if positions else None,
            convert,
            defaulted,
        )
        _COMPILED[key] = compiled
    return compiled


# (SQL, parameter names in order for a positional style) by table, columns, dialect, rows.
_ManyValues = tuple[str, tuple[str, ...] | None]
_MANY_VALUES: dict[tuple[Table, tuple[str, ...], Dialect, int], _ManyValues] = {}


def _many_values(
    table: Table, compiled: _CompiledInsert, dialect: Dialect, count: int
) -> _ManyValues:
    """``compiled``'s INSERT for ``count`` rows in one statement: (SQL, positions), its
    parameters named ``<column>_m<row>``."""
    key = (table, compiled.columns, dialect, count)
    found = _MANY_VALUES.get(key)
    if found is None:
        rows = [
            {name: bindparam(f"{name}_m{i}", type_=table.c[name].type) for name in compiled.columns}
            for i in range(count)
        ]
        statement = insert(table).values(rows).compile(dialect=dialect)
        positions = statement.positiontup
        found = _MANY_VALUES[key] = (str(statement), tuple(positions) if positions else None)
    return found


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` (each with the same columns) into ``table`` by COPY, on PostgreSQL.  Each
    value is what the INSERT of ``execute_insert`` would bind (its column type's bind
    processing, a Python-side default for an unset column); the driver escapes it."""
    dialect = session.get_bind().dialect
    compiled = _compiled(table, tuple(rows[0]), dialect)
    # A write the first-write hook never sees (COPY goes to the driver's cursor): its
    # transaction begins here, or a unit of work still in autocommit would commit these
    # rows on their own, before (and without) their audit event.
    first_write.begin_now(session.connection())
    preparer = dialect.identifier_preparer
    statement = "COPY {} ({}) FROM STDIN".format(
        preparer.format_table(table),
        ", ".join(preparer.format_column(table.c[name]) for name in compiled.columns),
    )
    cursor = session.connection().connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for values in rows:
                bound = compiled.values(values)
                copy.write_row([bound[name] for name in compiled.columns])
    finally:
        cursor.close()


def _default(column: Column[Any]) -> Any:
    """The value an INSERT would give ``column`` when it is not set (a Python-side default;
    these objects carry no server-side or SQL-expression ones)."""
    default = cast(Any, column.default)
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # wrapped by SQLAlchemy to take an execution context
    raise TypeError(f"no Python-side default for {column.table.name}.{column.key}")


def column_values(obj: object) -> dict[str, Any]:
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


@contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """The statements sent in this block go to PostgreSQL without waiting for each
    answer (psycopg's pipeline mode), and their answers are read together at its end:
    one round trip for several INSERTs instead of one each (plus one for BEGIN, which
    psycopg always waits for).  Only for writes whose
    results nobody reads (INSERTs without RETURNING).  A statement that fails makes the
    server skip the rest of the block, and its error is raised at the end of the block
    as SQLAlchemy would have raised it; the transaction is then aborted, as after any
    failed statement.  Anywhere else (SQLite) the block runs as it is."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    pipeline = getattr(driver, "pipeline", None)
    if connection.dialect.name != "postgresql" or pipeline is None:
        yield
        return
    # Writes: their transaction begins here, before the pipeline.  Leaving autocommit
    # inside it would cost psycopg a sync, the very round trip the pipeline saves.
    first_write.begin_now(connection)
    held = _PIPELINED.set(connection)
    try:
        with pipeline():
            yield
    except DBAPIError:
        raise
    except connection.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            "pipelined statements", None, exc, connection.dialect.loaded_dbapi.Error
        ) from exc
    finally:
        _PIPELINED.reset(held)
