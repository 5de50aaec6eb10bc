"""Reads as the database grows: list, page 100, search and get, p95 at each size.

    .venv/bin/python -m tests.benchmarks.bench_scale                    # 10,000 and 100,000
    .venv/bin/python -m tests.benchmarks.bench_scale --million          # ... and 1,000,000
    .venv/bin/python -m tests.benchmarks.bench_scale --sizes 2000,20000 # a quick look

One throw-away PostgreSQL database per size is filled with ``referrals import`` (the bulk
path: the create use case's sealing, routing and audit); one app per database serves,
through the Flask test client, as the youth worker of the sending unit (who sees every
referral):

  list     GET /api/v1/referrals (the first page, 50 referrals);
  page 100 the 100th page of that list, by its cursor (keyset pagination must not scan
           the 99 pages before it);
  search   POST /api/v1/referrals/search for one personal number (blind index; exactly one
           match at every size: each referral has its own number);
  get      GET /api/v1/referrals/{id} of a referral drawn at random.

The sizes are measured in interleaved rounds (each round times every read at every size,
the order of the sizes turning round by round), so a busy moment of the machine falls on
all sizes alike instead of on whichever was being measured.  Each read is timed
``--requests`` times per size in all; the table shows the 95th percentile in milliseconds
and its ratio to the smallest size's (the issue's goal: within 1.2 at 1,000,000 of the
10,000 figures), and the median beside it.  Every request is audited (and committed) as in
production; the sealer does not run.  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import create_engine

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from tests.benchmarks.bench_bulk import REFERRER, Deployment, body, write_lines
from tests.benchmarks.report import say
from tests.support.databases import postgres_database

API = "/api/v1/referrals"
WARM_UP = 5
ROUNDS = 10
# Every referral has its own personal number (bench_bulk.unique_personal_number), so the
# search finds exactly one at every size: what grows is only the table it is found in.
SEARCHED = 4242

Reads = dict[str, Callable[[], Any]]


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def timed(requests: int, call: Callable[[], Any]) -> list[float]:
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def ok(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.get_json())
    return response.get_json()


def reads(client: FlaskClient, headers: dict[str, str]) -> Reads:
    """The four reads at one size, each checked once and warmed up."""
    cursor = None
    for _ in range(99):
        page = ok(
            client.get(API, headers=headers, query_string={"cursor": cursor} if cursor else {})
        )
        cursor = page["next_cursor"]
        assert cursor, "fewer than 100 pages"
    ids = [item["id"] for item in ok(client.get(API, headers=headers))["items"]]
    number = body(SEARCHED)["subject"]["personal_number"]
    matches = ok(client.post(f"{API}/search", json={"personal_number": number}, headers=headers))
    assert len(matches["items"]) == 1, "the searched number must match exactly one referral"
    rng = random.Random(13)
    sample = ids + [item["id"] for item in page["items"]]
    calls: Reads = {
        "list": lambda: ok(client.get(API, headers=headers)),
        "page 100": lambda: ok(client.get(API, headers=headers, query_string={"cursor": cursor})),
        "search": lambda: ok(
            client.post(f"{API}/search", json={"personal_number": number}, headers=headers)
        ),
        "get": lambda: ok(client.get(f"{API}/{rng.choice(sample)}", headers=headers)),
    }
    for call in calls.values():
        timed(WARM_UP, call)
    return calls


def fill(stack: ExitStack, folder: Path, size: int) -> tuple[Deployment, dict[str, str]]:
    """A database of its own holding ``size`` referrals, and the youth worker's headers."""
    url = stack.enter_context(postgres_database())
    deployment = Deployment(folder / f"instance-{size}", url)
    deployment.run("db", "upgrade")
    deployment.run("seed", "demo", "--reason", "bench")
    source = folder / "referrals.jsonl"
    write_lines(source, size)
    seconds, _, output = deployment.run("import", str(source), "--reason", "bench")
    assert f"{size} referrals imported" in output, output
    source.unlink()
    say(f"filled {size:,} with `referrals import` in {seconds:.1f} s ({size / seconds:,.0f}/s)")
    analyze(url)
    key = devissuer.load_or_create_key(deployment.instance)
    token = devissuer.mint(key, role=Role.YOUTH_WORKER, unit=REFERRER, audience="referrals-api")
    return deployment, {"Authorization": f"Bearer {token}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="referrals, comma-separated")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 (a long fill)")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per read")
    arguments = parser.parse_args()
    sizes = sorted({int(size) for size in arguments.sizes.split(",")})
    if arguments.million:
        sizes.append(1_000_000)
    per_round = max(1, arguments.requests // ROUNDS)
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        served: dict[int, Reads] = {}
        for size in sizes:
            deployment, headers = fill(stack, Path(folder), size)
            app = create_app(
                Settings(instance_path=deployment.instance, database_url=deployment.url)
            )
            stack.callback(app.extensions["referrals"].dispose)
            served[size] = reads(app.test_client(), headers)
        samples: dict[int, dict[str, list[float]]] = {
            size: {name: [] for name in served[size]} for size in sizes
        }
        for round_ in range(ROUNDS):
            order = sizes[round_ % len(sizes) :] + sizes[: round_ % len(sizes)]
            for size in order:
                for name, call in served[size].items():
                    samples[size][name].extend(timed(per_round, call))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    say(
        f"\np95 (median) in ms, {ROUNDS} interleaved rounds x {per_round} requests per read and"
        f" size; load average {load} on {os.cpu_count()} CPUs"
    )
    names = list(samples[sizes[0]])
    say(f"  {'referrals':>10}" + "".join(f"{name:>22}" for name in names))
    first = {name: p95(samples[sizes[0]][name]) for name in names}
    for size in sizes:
        cells = ""
        for name in names:
            high, middle = p95(samples[size][name]), statistics.median(samples[size][name])
            cells += f"{high:>8.1f} ({high / first[name]:4.2f}) {middle:5.1f}"
        say(f"  {size:>10,}{cells}")
    say(f"  (in brackets: the p95's ratio to {sizes[0]:,}; then the median)")


def analyze(url: str) -> None:
    """ANALYZE after a fill, as autovacuum soon would: plans for the size measured."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
