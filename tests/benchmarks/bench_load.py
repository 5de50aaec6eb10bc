"""Ordinary load against the quickstart: does anything answer 5xx, does the sealer keep up?

    .venv/bin/python -m tests.benchmarks.bench_load [--duration 60] [--clients 1,2,4,8]
                                                    [--backends sqlite,postgresql]

For each backend, the real ``referrals quickstart`` runs in a subprocess on a loopback port
with a fresh instance folder: on the embedded default (SQLite in that folder), and on a
throw-away PostgreSQL database (``tests.support.databases.postgres_database``, given as
REFERRALS_DATABASE_URL).  The quickstart seals and signs from its own thread with the
default settings, exactly as a new user runs it.

For each client count, that many threads (one ``requests`` session each, the quickstart's
printed development tokens) loop for ``--duration`` seconds over: create-and-submit a
referral to sodermalm (youth worker), list the outbox (youth worker), accept (sodermalm
caseworker), read the timeline (youth worker), add a note (sodermalm caseworker).  Then
the script waits (at most the allowed seal lag plus the checkpoint interval) until every
event is sealed, and reads, from the database itself, the largest seal lag (sealed_at -
recorded_at) of the run's events.

Printed per run: requests, requests/second, 5xx and 4xx counts (a refused connection
counts as 5xx), pending at the end of the load and sealed after the wait, the largest
seal lag, checkpoints, the verification status, and from the quickstart's log the failed
sealer rounds (retried), sealer deaths (the loop ended) and failed webhook-worker rounds
(the worker writes too: it must neither starve nor fail).  Failed rounds and deaths are
counted over the quickstart's whole life.  The runs of one backend share
one quickstart, so the sealed and checkpoint figures accumulate.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, select

from referrals.config import Settings
from referrals.db.models import AuditEvent, AuditSeal
from tests.benchmarks.report import say
from tests.support.databases import postgres_database

BODY = {
    "subject": {"name": "Belastning Påhittadsson", "district": "sodermalm"},
    "categories": ["homelessness"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
    "submit": True,
}
NOTE = {"text": "Ringde upp, inget svar.", "visibility": "shared"}
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0


@dataclass
class Run:
    backend: str
    clients: int
    statuses: Counter[int]
    seconds: float
    pending: int
    sealed: int
    max_lag: float | None
    checkpoints: int
    status: str
    failed_rounds: int
    deaths: int
    worker_failures: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def quickstart(
    instance: Path, database_url: str | None
) -> Iterator[tuple[str, dict[str, str], Path]]:
    port = _free_port()
    env = {**os.environ, "REFERRALS_INSTANCE_PATH": str(instance), "REFERRALS_LOG_LEVEL": "WARNING"}
    env.pop("REFERRALS_DATABASE_URL", None)
    if database_url:
        env["REFERRALS_DATABASE_URL"] = database_url
    log = instance.parent / f"quickstart-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "referrals.cli", "quickstart", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                try:
                    if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"quickstart did not start:\n{log.read_text()}")
                time.sleep(0.2)
            tokens = dict(re.findall(r"^(\w+)_TOKEN=(\S+)$", log.read_text(), re.MULTILINE))
            yield base, tokens, log
        finally:
            process.terminate()
            process.wait(timeout=30)


def client_loop(base: str, tokens: dict[str, str], until: float) -> Counter[int]:
    worker = {"Authorization": f"Bearer {tokens['YOUTH_WORKER_UNGDOMSJOUREN']}"}
    receiver = {"Authorization": f"Bearer {tokens['CASEWORKER_SODERMALM']}"}
    api = f"{base}/api/v1/referrals"
    statuses: Counter[int] = Counter()
    with requests.Session() as http:

        def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
            try:
                response = http.request(
                    method, url, json=body, headers=headers, timeout=REQUEST_TIMEOUT
                )
            except requests.RequestException:
                statuses[599] += 1
                return None
            statuses[response.status_code] += 1
            return response

        while time.monotonic() < until:
            created = call("POST", api, worker, BODY)
            if created is None or created.status_code != 201:
                continue
            rid = created.json()["id"]
            call("GET", f"{api}?limit=20", worker)
            call("POST", f"{api}/{rid}/accept", receiver, {})
            call("GET", f"{api}/{rid}/events", worker)
            call("POST", f"{api}/{rid}/notes", receiver, NOTE)
    return statuses


def load(
    base: str, tokens: dict[str, str], clients: int, duration: float
) -> tuple[Counter[int], float]:
    results: list[Counter[int]] = []
    lock = threading.Lock()
    start = time.monotonic()
    until = start + duration

    def one() -> None:
        counted = client_loop(base, tokens, until)
        with lock:
            results.append(counted)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results, Counter[int]()), time.monotonic() - start


def verify(base: str, tokens: dict[str, str]) -> dict[str, Any]:
    auditor = {"Authorization": f"Bearer {tokens['AUDITOR']}"}
    response = requests.get(f"{base}/api/v1/audit/verify", headers=auditor, timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    body = response.json()
    assert isinstance(body, dict)
    return body


def max_seal_lag(database_url: str, since: datetime) -> float | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(AuditEvent.recorded_at, AuditSeal.sealed_at)
                .join(AuditSeal, AuditSeal.event_id == AuditEvent.id)
                .where(AuditEvent.recorded_at >= since)
            ).all()
    finally:
        engine.dispose()
    lags = [(sealed - recorded).total_seconds() for recorded, sealed in rows]
    return max(lags) if lags else None


def count(log: Path, message: str) -> int:
    return log.read_text(errors="replace").count(message)


def backend_runs(backend: str, clients: list[int], duration: float) -> Iterator[Run]:
    settings = Settings()
    catch_up = settings.audit_seal_lag + settings.audit_checkpoint_interval
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
        database_url = stack.enter_context(
            postgres_database() if backend == "postgresql" else nullcontext(None)
        )
        instance = folder / "instance"
        base, tokens, log = stack.enter_context(quickstart(instance, database_url))
        url = database_url or f"sqlite:///{instance / 'referrals.sqlite3'}"
        for n in clients:
            since = datetime.now(UTC)
            statuses, seconds = load(base, tokens, n, duration)
            pending = verify(base, tokens)["pending"]
            deadline = time.monotonic() + catch_up
            while True:
                result = verify(base, tokens)
                # Our own verify requests are events too: "caught up" is nearly nothing left.
                settled = result["pending"] <= 2 and result["freshness"]["unsigned"] <= 2
                if settled or time.monotonic() > deadline:
                    break
                time.sleep(1)
            yield Run(
                backend=backend,
                clients=n,
                statuses=statuses,
                seconds=seconds,
                pending=pending,
                sealed=result["sealed"],
                max_lag=max_seal_lag(url, since),
                checkpoints=result["checkpoints"],
                status=result["status"],
                failed_rounds=count(log, "audit sealer round failed"),
                deaths=count(log, "audit sealer stopped") + count(log, "Exception in thread"),
                worker_failures=count(log, "worker round failed"),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--clients", default="1,2,4,8", help="client counts, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    say(f"{args.duration:g} s per run; quickstart defaults (sealer thread, checkpoints)")
    header = (
        f"{'backend':<10} {'clients':>7} {'requests':>8} {'req/s':>7} {'5xx':>4} {'4xx':>4}"
        f" {'pending':>7} {'sealed':>7} {'max lag s':>9} {'ckpts':>5} {'verify':>7}"
        f" {'failed rounds':>13} {'deaths':>6} {'worker failed':>13}"
    )
    say(header)
    for backend in args.backends.split(","):
        for run in backend_runs(backend, clients, args.duration):
            total = sum(run.statuses.values())
            server = sum(c for s, c in run.statuses.items() if s >= 500)
            client = sum(c for s, c in run.statuses.items() if 400 <= s < 500)
            lag = f"{run.max_lag:.2f}" if run.max_lag is not None else "-"
            say(
                f"{run.backend:<10} {run.clients:>7} {total:>8} {total / run.seconds:>7.1f}"
                f" {server:>4} {client:>4} {run.pending:>7} {run.sealed:>7} {lag:>9}"
                f" {run.checkpoints:>5} {run.status:>7} {run.failed_rounds:>13} {run.deaths:>6}"
                f" {run.worker_failures:>13}"
            )


if __name__ == "__main__":
    main()
