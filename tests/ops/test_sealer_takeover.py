"""Two sealers on one PostgreSQL (the Compose/Kubernetes "active + standby"), as real
processes with the sealer's role: the one not sealing waits on the advisory lock, and
when the active one dies the other seals within seconds, on the same chain.

How the lock works (referrals/audit/sealing.py): every round takes
``pg_advisory_xact_lock(SEALER_LOCK)`` in its transaction and releases it at commit, so
the two are not a fixed active and standby: whichever asks first seals, the other blocks
in ``pg_advisory_xact_lock`` until then.  A sealer that dies mid-round loses its
connection, PostgreSQL rolls its transaction back and the lock passes on.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import create_engine, text

from referrals.audit.sealing import SEALER_LOCK
from tests.support.compose_stack import Stack, compose_stack

# Seconds the survivor has to seal what arrived after the other one died.
TAKEOVER_LIMIT = 5.0
FAST = {"REFERRALS_AUDIT_SEAL_INTERVAL": "0.2"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    with compose_stack(tmp_path_factory.mktemp("takeover")) as running:
        yield running  # type: ignore[misc]


def pending(stack: Stack) -> int:
    engine = create_engine(stack.url("app"))
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM audit_events e WHERE NOT EXISTS "
                        "(SELECT 1 FROM audit_seals s WHERE s.event_id = e.id)"
                    )
                )
            )
    finally:
        engine.dispose()


def waiting_on_the_sealer_lock(stack: Stack) -> int:
    engine = create_engine(stack.admin_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                        "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = :db "
                        "AND (l.classid::bigint << 32 | l.objid::bigint) = :key"
                    ),
                    {"db": stack.database, "key": SEALER_LOCK},
                )
            )
    finally:
        engine.dispose()


def record_events(stack: Stack, base: str, count: int) -> None:
    session = stack.api(base, "ungdomsjouren-app")
    for _ in range(count):
        assert session.get(f"{base}/api/v1/referrals", timeout=30).status_code == 200


def seconds_until_sealed(stack: Stack, limit: float) -> float:
    start = time.monotonic()
    while pending(stack):
        elapsed = time.monotonic() - start
        assert elapsed < limit, f"{pending(stack)} events still unsealed after {limit} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_the_standby_waits_on_the_lock_and_takes_over_from_a_dead_holder(stack: Stack) -> None:
    seeded = stack.run("app", "referrals", "seed", "stockholm", "--reason", "takeover-test")
    assert seeded.returncode == 0, seeded.stderr
    base = stack.start_app()
    # A sealer stuck mid-round: this connection, as the sealer role, holds the lock.
    holder = create_engine(stack.url("sealer"))
    connection = holder.connect()
    try:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK})
        stack.start("sealer", "standby", FAST)
        record_events(stack, base, 3)
        deadline = time.monotonic() + 20
        while waiting_on_the_sealer_lock(stack) < 1:
            assert time.monotonic() < deadline, stack.log("standby")
            time.sleep(0.2)
        time.sleep(1.0)
        assert pending(stack) >= 3  # it waits: nothing sealed while the lock is held
        # The holder dies (its backend goes away, as when a sealer's host is killed).
        admin = create_engine(stack.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as terminator:
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
            assert terminator.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.dispose()
    finally:
        connection.invalidate()
        holder.dispose()
    seconds_until_sealed(stack, TAKEOVER_LIMIT)
    stack.stop("standby")


def test_killing_one_of_two_running_sealers_leaves_the_other_sealing(stack: Stack) -> None:
    base = stack.start_app("app-2")
    first = stack.start("sealer", "sealer-a", FAST)
    stack.start("sealer", "sealer-b", FAST)
    record_events(stack, base, 3)
    seconds_until_sealed(stack, 15)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    record_events(stack, base, 5)
    seconds_until_sealed(stack, TAKEOVER_LIMIT)
    assert stack.processes["sealer-b"].poll() is None, stack.log("sealer-b")
    signed = stack.run("sealer", "referrals", "audit", "checkpoint")
    assert signed.returncode == 0, signed.stderr
    verified = stack.run("app", "referrals", "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
