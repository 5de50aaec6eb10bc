"""Reads as the database grows: list, page 100, search and get, p95 at each size.

    .venv/bin/python -m tests.benchmarks.bench_scale                    # 10,000 and 100,000
    .venv/bin/python -m tests.benchmarks.bench_scale --million          # ... and 1,000,000
    .venv/bin/python -m tests.benchmarks.bench_scale --sizes 2000,20000 # a quick look

One throw-away PostgreSQL database is filled with ``referrals import`` (the bulk path: the
create use case's sealing, routing and audit) up to each size in turn; at each size one
app serves, through the Flask test client, as the youth worker of the sending unit (who
sees every referral):

  list     GET /api/v1/referrals (the first page, 50 referrals);
  page 100 the 100th page of that list, by its cursor (keyset pagination must not scan
           the 99 pages before it);
  search   POST /api/v1/referrals/search for one personal number (blind index; exactly one
           match at every size: each referral has its own number);
  get      GET /api/v1/referrals/{id} of a referral drawn at random.

Each is timed ``--requests`` times after a warm-up; the table shows the 95th percentile
in milliseconds and its ratio to the smallest size's (the issue's goal: within 1.2 at
1,000,000 of the 10,000 figures).  Every request is audited (and committed) as in
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
# Every referral has its own personal number (bench_bulk.unique_personal_number), so the
# search finds exactly one at every size: what grows is only the table it is found in.
SEARCHED = 4242


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def timed(requests: int, call: Callable[[], Any]) -> float:
    for _ in range(WARM_UP):
        call()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return p95(samples)


def ok(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.get_json())
    return response.get_json()


def measure(client: FlaskClient, headers: dict[str, str], requests: int) -> dict[str, float]:
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
    return {
        "list": timed(requests, lambda: ok(client.get(API, headers=headers))),
        "page 100": timed(
            requests, lambda: ok(client.get(API, headers=headers, query_string={"cursor": cursor}))
        ),
        "search": timed(
            requests,
            lambda: ok(
                client.post(f"{API}/search", json={"personal_number": number}, headers=headers)
            ),
        ),
        "get": timed(
            requests, lambda: ok(client.get(f"{API}/{rng.choice(sample)}", headers=headers))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="referrals, comma-separated")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 (hours here)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per read")
    arguments = parser.parse_args()
    sizes = sorted({int(size) for size in arguments.sizes.split(",")})
    if arguments.million:
        sizes.append(1_000_000)
    table: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder, postgres_database() as url:
        deployment = Deployment(Path(folder) / "instance", url)
        deployment.run("db", "upgrade")
        deployment.run("seed", "demo", "--reason", "bench")
        key = devissuer.load_or_create_key(deployment.instance)
        token = devissuer.mint(key, role=Role.YOUTH_WORKER, unit=REFERRER, audience="referrals-api")
        headers = {"Authorization": f"Bearer {token}"}
        filled = 0
        for size in sizes:
            source = Path(folder) / "referrals.jsonl"
            write_lines(source, size - filled, start=filled)
            seconds, _, output = deployment.run("import", str(source), "--reason", "bench")
            assert f"{size - filled} referrals imported" in output, output
            say(
                f"filled {filled:,} -> {size:,} with `referrals import` in {seconds:.1f} s "
                f"({(size - filled) / seconds:,.0f} referrals/s)"
            )
            filled = size
            source.unlink()
            app = create_app(Settings(instance_path=deployment.instance, database_url=url))
            analyze(url)
            table[size] = measure(app.test_client(), headers, arguments.requests)
            app.extensions["referrals"].dispose()
            say(f"  {size:>9,}  " + "  ".join(f"{k} {v:6.1f} ms" for k, v in table[size].items()))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpus = os.cpu_count()
    say(f"\np95 in ms ({arguments.requests} requests each; load average {load} on {cpus} CPUs)")
    reads = list(next(iter(table.values())))
    say(f"  {'referrals':>10}" + "".join(f"{name:>18}" for name in reads))
    first = table[sizes[0]]
    for size in sizes:
        cells = "".join(
            f"{table[size][name]:>9.1f} ({table[size][name] / first[name]:4.2f})" for name in reads
        )
        say(f"  {size:>10,}{cells}")
    say(f"  (in brackets: the ratio to {sizes[0]:,})")


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
