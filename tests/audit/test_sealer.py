"""The sealer loop cannot silently stop, and checkpoints are signed without anyone asking.

A failed round (its connection killed mid-round on PostgreSQL, the write lock held past
the busy timeout on SQLite) is logged by exception class, backed off and retried; sealing
resumes and the chain verifies.  Checkpoints follow the policy: every N events or T seconds.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, make_url, text

from referrals.audit import sealing
from referrals.audit.sealer import Round, Sealer, SealerPolicy
from referrals.db.engine import Database, connect
from referrals.runtime import Runtime, audit_public_keys
from tests.api.helpers import REFERRALS, Actors, referral_body
from tests.support.clock import FakeClock

WAIT = 30.0  # far above any backoff here: a sealer that never recovers fails, not hangs
FAST = SealerPolicy(interval=0.05, checkpoint_events=1, checkpoint_interval=60.0, backoff_cap=0.2)


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.fixture
def sealer_database(database_url: str, committed_database: Database) -> Iterator[Database]:
    """The sealer's own engine on the committed database; a short busy timeout on SQLite,
    so that a lock held by someone else fails its round quickly."""
    database = connect(database_url, sqlite_busy_timeout=0.2)
    yield database
    database.dispose()


def traffic(app: Flask, dev_token: Any, count: int = 3) -> None:
    client = app.test_client()
    actors = Actors(dev_token)
    for _ in range(count):
        created = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
        assert created.status_code == 201, created.get_json()


def pending(database: Database) -> int:
    with database.sessions() as session:
        return sealing.verify(session, {}).pending


def running(sealer: Sealer) -> threading.Thread:
    thread = threading.Thread(target=sealer.run, daemon=True)
    thread.start()
    return thread


def hold_the_sealers_place(backend: str, database_url: str) -> Callable[[], None]:
    """Block the sealer mid-round; return how to let go."""
    if backend == "postgresql":
        engine = create_engine(database_url)
        connection = engine.connect()
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": sealing.SEALER_LOCK})

        def release_postgres() -> None:
            connection.rollback()
            connection.close()
            engine.dispose()

        return release_postgres
    raw = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")

    def release_sqlite() -> None:
        raw.rollback()
        raw.close()

    return release_sqlite


def kill_the_waiting_sealer(database_url: str) -> None:
    """PostgreSQL: terminate the backend that waits for the sealer lock (mid-round)."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:

        def waiting() -> list[int]:
            return list(
                connection.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event = 'advisory' AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )

        eventually(lambda: bool(waiting()), "the sealer waits for its lock")
        for pid in waiting():
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    engine.dispose()


def test_the_sealer_survives_a_failed_round_and_the_chain_verifies(
    backend: str,
    database_url: str,
    live_app: Flask,
    sealer_database: Database,
    dev_token: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = runtime_of(live_app)
    traffic(live_app, dev_token)
    sealer = Sealer(sealer_database.sessions, runtime.clock, runtime.audit_signing_key, FAST)
    release = hold_the_sealers_place(backend, database_url)
    caplog.set_level(logging.WARNING, logger="referrals.audit.sealer")
    thread = running(sealer)
    try:
        if backend == "postgresql":
            kill_the_waiting_sealer(database_url)
        eventually(lambda: sealer.failures >= 1, "a round has failed")
    finally:
        release()
    try:
        traffic(live_app, dev_token)  # new events after the failure are sealed too
        eventually(lambda: pending(sealer_database) == 0, "every event is sealed")
        assert thread.is_alive()
    finally:
        sealer.stop()
        thread.join(WAIT)

    failures = [r for r in caplog.records if r.name == "referrals.audit.sealer"]
    assert failures, "a failed round is logged"
    assert {getattr(r, "error", None) for r in failures} == {"OperationalError"}
    with sealer_database.sessions() as session:
        result = sealing.verify(session, audit_public_keys(runtime))
    assert result.ok, result.finding
    assert result.pending == 0
    assert result.sealed >= 6
    assert result.checkpoints >= 1


def test_a_checkpoint_after_n_events_or_t_seconds(
    app: Flask, database: Database, dev_token: Any, clock: FakeClock
) -> None:
    runtime = runtime_of(app)
    policy = SealerPolicy(checkpoint_events=100, checkpoint_interval=60.0)
    sealer = Sealer(database.sessions, clock, runtime.audit_signing_key, policy)
    traffic(app, dev_token, count=2)

    assert sealer.run_round() == Round(sealed=2, checkpoint=None)  # neither yet
    clock.advance(seconds=59)
    assert sealer.run_round().checkpoint is None
    clock.advance(seconds=1)
    assert sealer.run_round().checkpoint == 2  # T seconds after the first unsigned event

    sealer.policy = SealerPolicy(checkpoint_events=3, checkpoint_interval=60.0)
    traffic(app, dev_token, count=2)
    assert sealer.run_round() == Round(sealed=2, checkpoint=None)
    traffic(app, dev_token, count=1)
    assert sealer.run_round() == Round(sealed=1, checkpoint=5)  # N events


@pytest.mark.parametrize("streak", [1, 2, 5, 50])
def test_backoff_is_bounded_and_jittered(streak: int) -> None:
    policy = SealerPolicy(interval=1.0, backoff_cap=30.0)
    low = Sealer(None, FakeClock(), None, policy, jitter=lambda: 0.0)  # type: ignore[arg-type]
    high = Sealer(None, FakeClock(), None, policy, jitter=lambda: 1.0)  # type: ignore[arg-type]
    ceiling = min(30.0, 2.0**streak)

    assert low.backoff(streak) == ceiling / 2
    assert high.backoff(streak) == ceiling


def test_a_fault_that_is_not_the_databases_ends_the_loop(app: Flask, database: Database) -> None:
    """A bug must not be retried forever in silence: the loop ends and its caller exits
    non-zero (the CLI) or logs it as critical (the quickstart's thread)."""

    def broken_clock() -> datetime:
        raise ValueError("a bug, not a database fault")

    sealer = Sealer(database.sessions, broken_clock, runtime_of(app).audit_signing_key, FAST)

    with pytest.raises(ValueError, match="not a database fault"):
        sealer.run()
    assert sealer.failures == 0
