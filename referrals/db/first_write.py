"""Transactions that begin at their first write, on PostgreSQL.

A read's unit of work sends one SELECT and then its audit event.  With a transaction from
its first statement that is BEGIN, SELECT, INSERT, COMMIT: four round trips, two of which
carry no work (tests/benchmarks/bench_first_write.py measures what they cost a read).

Under READ COMMITTED (PostgreSQL's default, and ours) every statement of a transaction
takes its own snapshot, so a plain SELECT outside a transaction sees exactly what it would
have seen inside one.  What a transaction adds before its first write is only what a
statement holds until the commit: a row lock (``FOR UPDATE``/``FOR SHARE``), an advisory
lock, a ``SET LOCAL``.  So a unit of work's connection starts in autocommit and leaves it
before the first statement that is not known to be a plain read: a ``select()`` built by
SQLAlchemy without a row lock or a transaction-scoped function.  Anything else (an
INSERT, an UPDATE, a flush, ``text()``, a locking read) begins the transaction first, and
from there on the unit of work is one transaction exactly as before: every change still
commits with its audit event, or neither does.

One statement may commit alone, marked ``COMMITS_ALONE``: the audit event of a read that
wrote nothing (referrals/audit/group.py).  Its INSERT is then a transaction of its own,
durable when it returns (synchronous commit is never relaxed), so no answer leaves before
its event is on disk, and a read takes two round trips: SELECT, INSERT.

SQLite is left alone: it has no round trips, and its transactions are begun explicitly
(``BEGIN IMMEDIATE``, engine.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Select, event
from sqlalchemy.engine import ExecutionContext
from sqlalchemy.orm import Session

# Connection option: this connection is in autocommit until its first write.
BEGIN_AT_FIRST_WRITE = "referrals_begin_at_first_write"
# Statement option: this statement may be its own transaction if none has begun.
COMMITS_ALONE = "referrals_commits_alone"

# Functions whose effect lasts until, or happens at, the end of the transaction: a SELECT
# calling one is not a plain read.  (Our code calls them through text(), which begins
# anyway.)
_TRANSACTION_SCOPED = ("pg_advisory_xact", "pg_try_advisory_xact", "set_config", "pg_notify")


def install(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _begin_before_writing)


def begin_at_first_write(session: Session) -> None:
    """Start ``session``'s work in autocommit, to begin its transaction at its first write.

    SQLAlchemy's own AUTOCOMMIT isolation puts the connection there and restores it when
    the connection goes back to the pool.  A session bound to a connection rather than
    the engine joins whatever transaction its owner began, and is left as it is."""
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql" and _reads_committed(bind):
        session.connection(
            execution_options={"isolation_level": "AUTOCOMMIT", BEGIN_AT_FIRST_WRITE: True}
        )


def _reads_committed(engine: Engine) -> bool:
    """Whether a transaction on ``engine`` would be READ COMMITTED, where a statement
    outside it sees what it would see inside.  Under REPEATABLE READ or SERIALIZABLE (set
    for the engine, or as the server's or the role's default) every statement of a
    transaction shares one snapshot: there the transaction begins with the first
    statement, as it always did.  Not known before the engine's first connection: begin
    at the first statement until it is."""
    dialect = engine.dialect
    chosen = getattr(dialect, "_on_connect_isolation_level", None)
    return (chosen or getattr(dialect, "default_isolation_level", None)) == "READ COMMITTED"


def in_transaction(connection: Connection) -> bool:
    """Whether statements on ``connection`` are part of a transaction (not autocommit)."""
    return not getattr(connection.connection.dbapi_connection, "autocommit", False)


def _begin_before_writing(
    connection: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    context: ExecutionContext | None,
    _executemany: bool,
) -> None:
    dbapi_connection = _waiting_for_first_write(connection)
    if dbapi_connection is None:
        return
    if context is not None and context.execution_options.get(COMMITS_ALONE):
        return
    if _plain_read(context, statement):
        return
    _begin(dbapi_connection)


def begin_now(connection: Connection) -> None:
    """Begin ``connection``'s transaction with its next statement, if it waits for its
    first write: for writes sent where this module's hook acts too late (a psycopg
    pipeline, which must leave autocommit before its first statement, or it syncs)."""
    dbapi_connection = _waiting_for_first_write(connection)
    if dbapi_connection is not None:
        _begin(dbapi_connection)


def _waiting_for_first_write(connection: Connection) -> Any | None:
    """The driver's connection, when ``connection`` is in autocommit until its first
    write; None outside a unit of work, or once the transaction has begun (everything
    from there is part of it)."""
    if not connection.get_execution_options().get(BEGIN_AT_FIRST_WRITE):
        return None
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is None or not dbapi_connection.autocommit:
        return None
    return dbapi_connection


def _begin(dbapi_connection: Any) -> None:
    # psycopg sends BEGIN before the next statement once autocommit is off; this
    # connection is idle here (in autocommit there is never an open transaction).
    dbapi_connection.autocommit = False


def _plain_read(context: ExecutionContext | None, statement: str) -> bool:
    compiled = getattr(context, "compiled", None)
    built = getattr(compiled, "statement", None)
    if not isinstance(built, Select):
        return False  # text(), a driver-level statement, DML, a UNION: not known to read only
    if getattr(built, "_for_update_arg", None) is not None:
        return False  # a row lock lasts until the commit
    lowered = statement.lower()
    return not any(name in lowered for name in _TRANSACTION_SCOPED)
