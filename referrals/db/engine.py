"""Engine and session factory.  Built by ``create_app``; nothing at import time."""

from __future__ import annotations

import os
import select
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from referrals.db import first_write

# Seconds a SQLite writer waits for the write lock before the request fails with 503.
# Write transactions last milliseconds; this only runs out when something holds the lock
# far longer than any request should (a stuck process, an operator's open shell).
SQLITE_BUSY_TIMEOUT = 15.0
# Execution option: this connection only reads, so on SQLite it never takes the write lock.
READ_ONLY = "referrals_read_only"
# Seconds after which a pooled PostgreSQL connection is replaced rather than reused: it
# bounds how long a connection silently dropped by a firewall or proxy can linger.
POOL_RECYCLE = 1800


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    def read_session(self) -> Session:
        """A session for reads only: on SQLite it never waits for the write lock."""
        return read_only(self.sessions())

    def dispose(self) -> None:
        self.engine.dispose()


def read_only(session: Session) -> Session:
    """Mark a new session read-only: on SQLite it begins deferred, without the write lock."""
    session.connection(execution_options={READ_ONLY: True})
    return session


def connect(
    url: str, *, sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT, **engine_options: Any
) -> Database:
    # Bound parameters are ciphertexts, blind-index tags and fingerprints: keep them out
    # of exception messages, and so out of logs.
    engine_options.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        engine = create_engine(url, **engine_options)
        _make_sqlite_transactional(engine, sqlite_busy_timeout)
    else:
        # No "SELECT 1" per checkout (pool_pre_ping): that was a round trip on every
        # request.  A connection the server has closed (restart, idle timeout,
        # pg_terminate_backend) has its close already waiting on the socket: a poll of it,
        # no round trip, finds it at checkout (``_drop_closed``), and SQLAlchemy
        # invalidates the whole pool on any disconnect a statement meets.
        engine_options.setdefault("pool_pre_ping", False)
        engine_options.setdefault("pool_recycle", POOL_RECYCLE)
        engine = create_engine(url, **engine_options)
        event.listen(engine, "checkout", _drop_closed)
        first_write.install(engine)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection whose server side has spoken while it sat idle.

    An idle connection has nothing to read; anything waiting (the server's "terminating
    connection" notice, end of file) means it is closed or closing.  Raising
    ``DisconnectionError`` makes the pool drop it and check out another (SQLAlchemy's
    documented pessimistic-disconnect hook).  A harmless message (an asynchronous
    notice) costs one reconnect, never a wrong answer."""
    try:
        fileno = dbapi_connection.fileno()
    except Exception as exc:  # closed or broken: no socket any more
        raise DisconnectionError("connection closed") from exc
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection while it was idle")


def _create_private_file(path: str | None) -> None:
    """The embedded database holds case data: readable by this user only, whatever the umask."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def _make_sqlite_transactional(engine: Engine, busy_timeout: float) -> None:
    """Make SQLite behave as an embedded database with concurrent writers.

    pysqlite defers BEGIN and ignores SAVEPOINT semantics; SQLAlchemy's documented recipe
    takes control of both.  On top of it:

    - WAL: readers never block the writer and the writer never blocks readers.
    - ``BEGIN IMMEDIATE``: every transaction takes the write lock at its start and waits
      for it under the busy timeout.  A deferred transaction that reads and then writes
      must upgrade its lock; when another writer got there first, SQLite fails that
      upgrade at once ("database is locked", no waiting, whatever the busy timeout),
      which answered ordinary requests with 503.  Almost every request writes (its audit
      event), so queueing for the lock up front costs nothing.  Connections marked
      ``READ_ONLY`` (readiness, health) begin deferred and never take it.
    - The busy timeout lets writers queue for the lock instead of failing.
    - Foreign keys are off by default in SQLite; referential integrity must hold there too.
    """
    milliseconds = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The timeout first: switching to WAL needs a moment of exclusive access.
        cursor.execute(f"PRAGMA busy_timeout = {milliseconds}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL loses no committed transaction on an application crash; only
        # a power cut can drop the last commits, never corrupt the file.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
