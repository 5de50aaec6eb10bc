"""What the metrics cost: per request, per observation, per scrape.  One process, one run.

    .venv/bin/python -m tests.benchmarks.bench_metrics

One app on a temporary SQLite instance, through the Flask test client:

  A. the real instrumentation: every request counted and timed by route template;
  B. the same app with ``HttpMetrics.observe`` replaced by a function that does nothing.

The request is ``GET /healthz`` (no database, no audit): the cheapest request there is, so
the instrumentation's share is as large as it can ever be.  Rounds alternate ABBA so both
see the same machine noise; the figure is the median over rounds of the time per request.
``observe`` itself is timed with ``timeit``, in-process and in prometheus_client's
multiprocess mode (a subprocess with PROMETHEUS_MULTIPROC_DIR set, as under gunicorn).
Last, a scrape of ``/metrics`` (the database gauges included) over a database holding
``REFERRALS`` submitted referrals and their audit events and webhooks.  Not a test.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from flask.testing import FlaskClient

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db import migrate
from referrals.metrics.families import HttpMetrics
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from tests.api.helpers import REFERRALS, referral_body
from tests.benchmarks.report import say
from tests.support.metrics import AUTHORIZATION, TOKEN

ROUNDS = 40  # per variant, after a warm-up round each
PER_ROUND = 200
REFERRALS_SEEDED = int(os.environ.get("BENCH_METRICS_REFERRALS", "300"))

OBSERVE = """
from referrals.metrics.families import Metrics
http = Metrics().http()
"""


def _observe_nothing(self: HttpMetrics, method: str, route: str, status: int, s: float) -> None:
    return


def time_round(client: FlaskClient) -> float:
    start = time.perf_counter()
    for _ in range(PER_ROUND):
        client.get("/healthz")
    return (time.perf_counter() - start) / PER_ROUND


def observe_cost(multiprocess: bool) -> float:
    """Microseconds per ``observe`` call, best of 5 repeats of 20,000."""
    code = (
        "import timeit\n"
        f'print(min(timeit.repeat(\'http.observe("GET", "/api/v1/referrals", 200, 0.004)\','
        f" setup={OBSERVE!r}, number=20000, repeat=5)) / 20000 * 1e6)"
    )
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as folder:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = folder
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
    return float(out.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        settings = Settings(instance_path=instance, metrics_token=TOKEN, log_level="WARNING")
        app = create_app(settings)
        runtime = app.extensions["referrals"]
        assert isinstance(runtime, Runtime)
        migrate.upgrade(settings.resolved_database_url(instance), vault=runtime.vault)
        with runtime.unit_of_work() as uow:
            seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
        client = app.test_client()

        timings: dict[str, list[float]] = {"A": [], "B": []}
        noop = mock.patch.object(HttpMetrics, "observe", _observe_nothing)
        time_round(client)
        with noop:
            time_round(client)
        for i in range(ROUNDS):
            for variant in "AB" if i % 2 == 0 else "BA":
                if variant == "A":
                    timings["A"].append(time_round(client))
                else:
                    with noop:
                        timings["B"].append(time_round(client))
        a, b = statistics.median(timings["A"]), statistics.median(timings["B"])
        say(f"GET /healthz through the test client, {ROUNDS} rounds of {PER_ROUND}, medians:")
        say(f"  A with metrics     {a * 1e6:8.1f} µs per request")
        say(f"  B observe() no-op  {b * 1e6:8.1f} µs per request")
        say(f"  A - B              {(a - b) * 1e6:8.1f} µs per request   (ratio A/B {a / b:.3f})")
        paired = [x / y for x, y in zip(timings["A"], timings["B"], strict=True)]
        q1, q2, q3 = statistics.quantiles(paired, n=4)
        say(f"  paired per-round ratio A/B: median {q2:.3f}, interquartile {q1:.3f} to {q3:.3f}")

        say()
        say("observe() alone (one counter and one histogram, by route and status class):")
        say(f"  in-process                 {observe_cost(False):6.2f} µs per call")
        say(f"  multiprocess (gunicorn)    {observe_cost(True):6.2f} µs per call")

        key = devissuer.load_or_create_key(instance)
        worker = {
            "Authorization": "Bearer "
            + devissuer.mint(
                key, role=Role.YOUTH_WORKER, unit="ungdomsjouren", audience=settings.oidc_audience
            )
        }
        for _ in range(REFERRALS_SEEDED):
            answer = client.post(REFERRALS, json=referral_body(submit=True), headers=worker)
            assert answer.status_code == 201, answer.get_json()
        scrapes = []
        for _ in range(30):
            start = time.perf_counter()
            assert client.get("/metrics", headers=AUTHORIZATION).status_code == 200
            scrapes.append(time.perf_counter() - start)
        say()
        say(
            f"GET /metrics over {REFERRALS_SEEDED} submitted referrals (their audit events "
            "unsealed, their webhooks pending):"
        )
        say(f"  median {statistics.median(scrapes) * 1e3:.1f} ms per scrape (30 scrapes)")
        runtime.dispose()


if __name__ == "__main__":
    main()
