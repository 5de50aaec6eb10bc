"""One hash chain from many writers: two app instances, two sealers, eight clients, PostgreSQL.

Two ``referrals serve`` processes on two loopback ports share one instance folder (so both
trust the same development token key and keyring) and one throw-away PostgreSQL database.
Two ``referrals audit seal --follow`` processes seal concurrently while eight client
processes send 500 audited reads each, alternating between the instances; one in ten is a
caseworker of another unit and is answered 404 (and audited as denied).  Afterwards the
chain must hold exactly one event per request, sealed exactly once, at positions 1..N with
no gap, and ``referrals audit verify`` must say ``ok``.

The sealing lag (sealed_at - recorded_at, over the events of the load, which start once both
sealers are running) and the timings are printed, not asserted: run with ``-s`` to see them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text

from referrals.auth import devissuer
from referrals.auth.principal import Role
from tests.support.databases import postgres_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CLIENTS = 8
# The default run is bounded (1,200 requests, a minute on two cores); the soak run of the
# chain review is REFERRALS_SOAK_REQUESTS=500 (4,000 requests).
REQUESTS_PER_CLIENT = int(os.environ.get("REFERRALS_SOAK_REQUESTS", "150"))
DENIED_EVERY = 10  # every tenth request is a caseworker of another unit: 404
SEALERS = 2
SEAL_INTERVAL = "0.2"
CHECKPOINT_EVERY = "2"  # several checkpoints during the run, written by both sealers
CATCH_UP_TIMEOUT = 60.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

BODY = {
    "subject": {"name": "Samtidig Påhittadsson", "district": "sodermalm"},
    "categories": ["homelessness"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
    "submit": True,
}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "referrals.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then SIGKILL if it does not go; returns how it ended."""
    if process.poll() is not None:
        return f"already exited ({process.returncode})"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
        return "stopped by SIGTERM"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
        return "killed (SIGKILL) after SIGTERM timed out"


@contextmanager
def _running(
    args: list[str], env: dict[str, str], log: Path, stopped: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "referrals.cli", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            yield process
        finally:
            stopped[log.stem] = _stop(process)


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert process.poll() is None, _tail(log)
        assert time.monotonic() < deadline, _tail(log)
        time.sleep(0.1)


_start_line: Any = None  # each client process's handle on the shared barrier


def _join_start_line(barrier: Any) -> None:
    global _start_line
    _start_line = barrier


def _client(
    bases: tuple[str, str],
    path: str,
    allowed: dict[str, str],
    denied: dict[str, str],
    count: int,
    offset: int,
) -> tuple[dict[int, int], float, float]:
    """One client process: ``count`` reads with one keep-alive session, alternating bases.

    Waits at the start line for the other clients first (spawning eight interpreters on
    two cores takes seconds); returns the statuses and the wall-clock span of the requests.
    """
    statuses: Counter[int] = Counter()
    _start_line.wait(timeout=STARTUP_TIMEOUT)
    first = time.time()
    with requests.Session() as session:
        for i in range(count):
            headers = denied if i % DENIED_EVERY == DENIED_EVERY - 1 else allowed
            response = session.get(bases[(i + offset) % 2] + path, headers=headers, timeout=30)
            response.close()
            statuses[response.status_code] += 1
    return dict(statuses), first, time.time()


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        events = connection.scalar(text("SELECT count(*) FROM audit_events"))
        seals = connection.scalar(text("SELECT count(*) FROM audit_seals"))
    return int(events or 0), int(seals or 0)


def catch_up(engine: Engine, what: str) -> int:
    """Wait until every audit event has a seal; returns the number of events."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while True:
        events, seals = _counts(engine)
        if events == seals:
            return events
        assert time.monotonic() < deadline, f"{what}: {seals} of {events} events sealed"
        time.sleep(0.1)


def test_two_instances_two_sealers_eight_clients_one_chain(tmp_path: Path) -> None:
    started = time.monotonic()
    instance = tmp_path / "instance"
    with postgres_database() as url, ExitStack() as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
        env |= {
            "REFERRALS_ENV": "development",
            "REFERRALS_INSTANCE_PATH": str(instance),
            "REFERRALS_DATABASE_URL": url,
        }
        engine = create_engine(url)
        stack.callback(engine.dispose)

        # Once, before anything runs concurrently: the instance folder, its keys, the units.
        seeded = _cli(env, "seed", "demo")
        assert seeded.returncode == 0, seeded.stderr
        key = devissuer.load_or_create_key(instance)

        def bearer(role: Role, unit: str) -> dict[str, str]:
            token = devissuer.mint(key, role=role, unit=unit, audience="referrals-api")
            return {"Authorization": f"Bearer {token}"}

        worker = bearer(Role.YOUTH_WORKER, "ungdomsjouren")
        other_unit = bearer(Role.CASEWORKER, "norrmalm")  # the referral goes to sodermalm

        stopped: dict[str, str] = {}
        bases: list[str] = []
        for name in ("server-a", "server-b"):
            port = _free_port()
            log = tmp_path / f"{name}.log"
            server = stack.enter_context(
                _running(["serve", "--port", str(port)], env, log, stopped)
            )
            bases.append(f"http://127.0.0.1:{port}")
            _wait_ready(bases[-1], server, log)
        a, b = bases

        # The sealers run inside their own ExitStack so they can be stopped before verify.
        with ExitStack() as sealing:
            sealers = [
                sealing.enter_context(
                    _running(
                        [
                            "audit",
                            "seal",
                            "--follow",
                            "--interval",
                            SEAL_INTERVAL,
                            "--checkpoint-every",
                            CHECKPOINT_EVERY,
                        ],
                        env,
                        tmp_path / f"sealer-{n}.log",
                        stopped,
                    )
                )
                for n in range(SEALERS)
            ]

            created = requests.post(f"{a}/api/v1/referrals", json=BODY, headers=worker, timeout=10)
            assert created.status_code == 201, created.text
            assert created.json()["receiving_unit"] == "sodermalm"
            path = f"/api/v1/referrals/{created.json()['id']}"
            assert requests.get(b + path, headers=worker, timeout=10).status_code == 200
            assert requests.get(a + path, headers=other_unit, timeout=10).status_code == 404
            setup_events, _ = _counts(engine)

            # The sealers are up once they have sealed the setup's events.
            catch_up(engine, "the sealers sealing the setup's events")
            ready = time.monotonic()
            load_recorded_from = datetime.now(UTC)

            spawn = multiprocessing.get_context("spawn")
            statuses: Counter[int] = Counter()
            spans: list[tuple[float, float]] = []
            with ProcessPoolExecutor(
                max_workers=CLIENTS,
                mp_context=spawn,
                initializer=_join_start_line,
                initargs=(spawn.Barrier(CLIENTS),),
            ) as pool:
                futures = [
                    pool.submit(_client, (a, b), path, worker, other_unit, REQUESTS_PER_CLIENT, n)
                    for n in range(CLIENTS)
                ]
                for future in futures:
                    counted, first, last = future.result()
                    statuses.update(counted)
                    spans.append((first, last))
            load_seconds = max(end for _, end in spans) - min(start for start, _ in spans)

            for n, sealer in enumerate(sealers):
                assert sealer.poll() is None, _tail(tmp_path / f"sealer-{n}.log")
            total = CLIENTS * REQUESTS_PER_CLIENT
            denied = CLIENTS * (REQUESTS_PER_CLIENT // DENIED_EVERY)
            assert statuses == {200: total - denied, 404: denied}, statuses

            catch_up_started = time.monotonic()
            events = catch_up(engine, "the sealers catching up after the load")
            catch_up_seconds = time.monotonic() - catch_up_started
        # Both sealers are stopped here (SIGTERM, or SIGKILL if they do not go).

        assert events == setup_events + total, (events, setup_events, total)
        with engine.connect() as connection:
            chain = connection.execute(
                text(
                    "SELECT count(*) AS n, count(DISTINCT seq) AS seqs, min(seq) AS first,"
                    " max(seq) AS last, count(DISTINCT event_id) AS sealed_events"
                    " FROM audit_seals"
                )
            ).one()
            unsealed = connection.scalar(
                text(
                    "SELECT count(*) FROM audit_events e"
                    " LEFT JOIN audit_seals s ON s.event_id = e.id WHERE s.seq IS NULL"
                )
            )
            outcomes: dict[str, int] = dict(
                connection.execute(
                    text(
                        "SELECT outcome, count(*) FROM audit_events"
                        " WHERE action = 'referral:read' GROUP BY outcome"
                    )
                ).all()
            )
            lag = connection.execute(
                text(
                    "SELECT"
                    " max(extract(epoch FROM s.sealed_at - e.recorded_at)) AS max,"
                    " percentile_cont(0.5) WITHIN GROUP"
                    "  (ORDER BY extract(epoch FROM s.sealed_at - e.recorded_at)) AS p50,"
                    " percentile_cont(0.99) WITHIN GROUP"
                    "  (ORDER BY extract(epoch FROM s.sealed_at - e.recorded_at)) AS p99,"
                    " min(extract(epoch FROM s.sealed_at - e.recorded_at)) AS min,"
                    " count(*) FILTER (WHERE s.sealed_at < e.recorded_at) AS negative"
                    " FROM audit_seals s JOIN audit_events e ON e.id = s.event_id"
                    " WHERE e.recorded_at >= :since"
                ),
                {"since": load_recorded_from},
            ).one()
            checkpoints = connection.execute(
                text(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE created_at < before) AS back"
                    " FROM (SELECT created_at, lag(created_at) OVER (ORDER BY seq) AS before"
                    "       FROM audit_checkpoints) AS c"
                )
            ).one()
        assert (chain.n, chain.seqs, chain.first, chain.last) == (events, events, 1, events)
        assert chain.sealed_events == events
        assert unsealed == 0
        assert outcomes == {"allowed": total - denied + 1, "denied": denied + 1}, outcomes

        verified = _cli(env, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        lines = verified.stdout.strip().splitlines()
        assert lines[-1] == "ok", verified.stdout
        assert lines[0].startswith(f"{events} sealed events,"), verified.stdout
        assert lines[0].endswith(" 0 awaiting sealing"), verified.stdout

        say("")
        say(
            f"chain concurrency: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests, "
            f"2 instances, {SEALERS} sealers, PostgreSQL"
        )
        say(f"  statuses            {dict(sorted(statuses.items()))}")
        say(
            f"  events / seals      {events} / {chain.n}"
            f" (setup {setup_events}), seq 1..{chain.last}"
        )
        say(
            f"  checkpoints         {checkpoints.n}"
            f" ({checkpoints.back} dated earlier than the checkpoint before them)"
        )
        say(
            f"  load                {load_seconds:.1f} s = {total / load_seconds:.0f} requests/s"
            " (first request to last response, all clients)"
        )
        say(f"  sealers caught up   {catch_up_seconds:.2f} s after the load ended")
        say(
            f"  sealing lag (s)     over the {total} load events (sealers already running):\n"
            f"                      max {lag.max:.3f}, p99 {lag.p99:.3f}, p50 {lag.p50:.3f},"
            f" min {lag.min:.3f} ({lag.negative} events sealed_at < recorded_at)"
        )
        say(f"  verify              {' / '.join(lines)}")
        say(
            f"  setup               {ready - started:.1f} s"
            " (database, seed, two servers, two sealers up)"
        )
        say(f"  sealers             {stopped.get('sealer-0')}; {stopped.get('sealer-1')}")
        say(f"  whole test so far   {time.monotonic() - started:.1f} s")
