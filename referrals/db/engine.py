"""Engine and session factory.  Built by ``create_app``; nothing at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def connect(url: str, **engine_options: Any) -> Database:
    # Bound parameters are ciphertexts, blind-index tags and fingerprints: keep them out
    # of exception messages, and so out of logs.
    engine_options.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        engine = create_engine(url, **engine_options)
        _make_sqlite_transactional(engine)
    else:
        engine_options.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **engine_options)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _create_private_file(path: str | None) -> None:
    """The embedded database holds case data: readable by this user only, whatever the umask."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def _make_sqlite_transactional(engine: Engine) -> None:
    """pysqlite defers BEGIN and ignores SAVEPOINT semantics; take control of both.

    This is SQLAlchemy's documented recipe.  Foreign keys are off by default in
    SQLite; referential integrity must hold there too.  The busy timeout lets
    concurrent writers queue instead of failing at once with "database is locked".
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
