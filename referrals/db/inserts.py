"""New rows written table by table, without the ORM's unit of work.

The create use case and the bulk import build their objects (a referral, its timeline,
its outbox message) as ORM instances, but write them here: the column values set on each
object (``column_values``), one statement per table (``insert_rows``), instead of a
flush that tracks every object and sends the draft's INSERT and its submission's UPDATE
separately.  The values are bound as an INSERT binds them; a column left unset takes its
Python-side default, as in an INSERT.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Column, Table, insert, inspect
from sqlalchemy.orm import Mapper, Session

# From this many rows on, PostgreSQL takes them by COPY: one stream instead of one
# INSERT each (most of an import batch's time in the database).  Below it, one INSERT
# statement is one round trip, where COPY needs two (start, then data and end).
COPY_FROM = 16


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
        session.execute(insert(table), rows)


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` (each with the same columns) into ``table`` by COPY, on PostgreSQL.  Each
    value goes through its column type's bind processing, as in an INSERT, and a column
    left unset takes its Python-side default; the driver escapes every value."""
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
