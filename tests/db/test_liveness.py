"""Pooled PostgreSQL connections: no ping round trip per request, yet a connection the
server closed is never handed to a request.

The pool used to send ``SELECT 1`` on every checkout (``pool_pre_ping``).  Now a checkout
polls the socket instead (``referrals.db.engine._drop_closed``): a server-side close is
already waiting there.  These tests kill the pooled connection's backend for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from referrals.db.engine import Database, connect

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    assert database_url.startswith("postgresql")
    db = connect(database_url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


def _backend_pid(db: Database) -> int:
    with db.sessions() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def _terminate(database_url: str, pid: int) -> None:
    admin = connect(database_url)
    try:
        with admin.engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ):
                assert time.monotonic() < deadline, "the backend did not end"
                time.sleep(0.05)
    finally:
        admin.dispose()


def test_a_checkout_sends_no_statement(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _backend_pid(database)
    pings: list[object] = []
    dialect = database.engine.dialect
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    sent: list[str] = []
    event.listen(
        database.engine, "before_cursor_execute", lambda *args: sent.append(args[2]), named=False
    )
    with database.sessions() as session:
        session.execute(text("SELECT 42"))
    # Only the statement itself: no ping before it.
    assert sent == ["SELECT 42"]
    assert pings == []
    # And the healthy connection is the one reused, not replaced.
    assert _backend_pid(database) == first


def test_a_connection_the_server_closed_is_not_handed_out(
    database: Database, database_url: str
) -> None:
    pid = _backend_pid(database)  # the pool's only connection, now idle in it
    _terminate(database_url, pid)
    # The next unit of work gets a fresh connection: no error reaches the request.
    with database.sessions() as session:
        assert session.scalar(text("SELECT 1")) == 1
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid
