"""Scale out on one PostgreSQL: throughput with two app instances ÷ one.

    .venv/bin/python -m tests.benchmarks.bench_scale_out [--duration 15] [--clients 8]

deploy/compose.yaml's services as processes (tests/support/compose_stack.py: each with its
command, environment, secret files and database role; the test IdP over HTTPS standing
in for Keycloak): two app instances under gunicorn (WEB_CONCURRENCY as compose sets it),
two webhook workers, and two sealers (one sealing, one waiting on the advisory lock), all
on one PostgreSQL database.

The same closed-loop load (``--clients`` threads, each: a youth worker creates and
submits a referral, reads it, lists the unit's referrals) runs for ``--duration`` seconds
against one instance, then against both (threads alternate between them), then against
one again; the baseline is the mean of the two single-instance runs, so drift over the
run (a growing database) does not flatter either side.  Printed: requests, requests per
second and 5xx per run, the ratio two ÷ one, the machine's CPU count (both instances
share it: on a small machine the ratio says how much the second instance adds *here*,
not what a second host would add), and at the end that every event was sealed and the
trail verifies.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.benchmarks.report import say
from tests.support.compose_stack import Stack, compose_stack

BODY = {
    "subject": {"name": "Skala Utsson", "district": "sodermalm"},
    "categories": ["homelessness"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
    "submit": True,
}


@dataclass
class Run:
    label: str
    requests: int
    seconds: float
    statuses: Counter[int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def load(stack: Stack, bases: list[str], clients: int, duration: float, label: str) -> Run:
    token = stack.token("ungdomsjouren-app")
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client(index: int) -> None:
        base = bases[index % len(bases)]
        seen: Counter[int] = Counter()
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            while time.monotonic() < stop:
                try:
                    created = session.post(f"{base}/api/v1/referrals", json=BODY, timeout=30)
                    seen[created.status_code] += 1
                    if created.status_code == 201:
                        url = f"{base}/api/v1/referrals/{created.json()['id']}"
                        seen[session.get(url, timeout=30).status_code] += 1
                    seen[session.get(f"{base}/api/v1/referrals", timeout=30).status_code] += 1
                except requests.RequestException:
                    seen[599] += 1
        with lock:
            statuses.update(seen)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    run = Run(label, sum(statuses.values()), elapsed, statuses)
    say(
        f"{label:<16} {run.requests:>6} requests  {run.rate:>7.1f}/s  "
        f"5xx {run.errors}  ({dict(sorted(statuses.items()))})"
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, compose_stack(Path(directory)) as stack:
        seeded = stack.run("app", "referrals", "seed", "stockholm", "--reason", "bench")
        assert seeded.returncode == 0, seeded.stderr
        first = stack.start_app("app-1")
        second = stack.start_app("app-2")
        for name in ("worker-1", "worker-2"):
            stack.start("worker", name)
        for name in ("sealer-1", "sealer-2"):
            stack.start("sealer", name)
        say(
            f"scale out: {os.cpu_count()} CPUs, {args.clients} clients, {args.duration:.0f} s "
            "per run; 2 workers, 2 sealers, one PostgreSQL"
        )
        load(stack, [first], args.clients, 3.0, "warm-up")
        one_a = load(stack, [first], args.clients, args.duration, "one instance")
        two = load(stack, [first, second], args.clients, args.duration, "two instances")
        one_b = load(stack, [first], args.clients, args.duration, "one instance")
        baseline = (one_a.rate + one_b.rate) / 2
        say(f"throughput two ÷ one: {two.rate / baseline:.2f}")
        deadline = time.monotonic() + 60
        while True:
            verified = stack.run("app", "referrals", "audit", "verify")
            if verified.returncode == 0 or time.monotonic() > deadline:
                break
            stack.run("sealer", "referrals", "audit", "checkpoint")
            time.sleep(1)
        say(f"audit verify: {verified.stdout.strip().splitlines()[-1]}")
        for name in ("app-1", "app-2", "worker-1", "worker-2", "sealer-1", "sealer-2"):
            state = "running" if stack.processes[name].poll() is None else "EXITED"
            say(f"  {name}: {state}")


if __name__ == "__main__":
    main()
