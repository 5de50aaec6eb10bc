"""What privacy costs against the app a team would otherwise write: this service beside a
naive Flask + SQLAlchemy app, over HTTP, on PostgreSQL, in one run.

    .venv/bin/python -m tests.benchmarks.bench_naive [--rounds 3] [--seconds 3]
                                                     [--models sync,gthread]

Needs PostgreSQL (``REFERRALS_TEST_POSTGRES_URL``, as the tests) and the HTTP load generator
``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``; macOS: ``brew install wrk``).

Three apps, each served by gunicorn on loopback with the same settings (workers, worker
class, threads; no access log), on the same throw-away PostgreSQL database:

  naive   written below, as a team would write it without privacy: Flask + SQLAlchemy 2
          ORM, the referral body in a plaintext JSON column, ``session.get`` for a read,
          one ``session.add`` + commit for a create, no authentication, no audit;
  floor   the naive app's audited floor: the same read plus one committed INSERT of an
          audit row before it answers (what any audited read must at least cost);
  service this service, as shipped: bearer-token verification, every personal field
          sealed, one audit event per request committed before the answer.

Loads, each ``wrk -t2 -c16`` for ``--seconds``: ``read`` (GET one referral by id: naive,
floor, service) and ``create`` (POST the same referral body: naive insert; the service
creates *and submits* it, ``"submit": true``: routing, deadline, outbox message, timeline
events, audit).  Rounds interleave the five loads, in a rotating order, so every figure sees
the same machine noise; each figure is the median of its rounds.  Every load must answer
2xx only (checked).  Two worker models: ``sync`` (two sync workers) and ``gthread`` (two
workers of eight threads, the model deploy/gunicorn.conf.py recommends).

Printed: requests/second per app and load, and the ratios service/naive and service/floor
(goals: read >= 0.9x the floor, read >= 0.8x naive with the recommended model, create >=
0.7x naive).  Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, abort, jsonify, request
from sqlalchemy import JSON, DateTime, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from tests.benchmarks.report import say
from tests.support.databases import postgres_database

BODY = {
    "subject": {"name": "Benchmark Påhittadsson", "district": "sodermalm"},
    "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-000 56 78"},
    "categories": ["drugs", "school_absence"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "place_met": "Påhittade torget, vid fontänen",
    "narrative": "Påhittad berättelse. " * 40,
    "submit": True,
}
WORKERS = 2
THREADS = 8
MODELS = {
    "sync": ["--worker-class", "sync"],
    "gthread": ["--worker-class", "gthread", "--threads", str(THREADS)],
}
LOADS = ("naive read", "floor read", "service read", "naive create", "service create")
STARTUP_TIMEOUT = 60.0


# --- the naive app: what a team writes without privacy -------------------------------------


class NaiveBase(DeclarativeBase):
    pass


class NaiveReferral(NaiveBase):
    __tablename__ = "naive_referrals"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class NaiveAccess(NaiveBase):
    """The floor's one audit row per read."""

    __tablename__ = "naive_access_log"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(40))
    referral_id: Mapped[uuid.UUID]


def naive_app() -> Flask:
    """``gunicorn 'tests.benchmarks.bench_naive:naive_app()'`` (NAIVE_DATABASE_URL)."""
    engine = create_engine(os.environ["NAIVE_DATABASE_URL"])
    sessions = sessionmaker(engine, expire_on_commit=False)
    app = Flask("naive")

    def shown(row: NaiveReferral) -> dict[str, Any]:
        return {"id": str(row.id), "created_at": row.created_at.isoformat(), **row.body}

    @app.get("/referrals/<uuid:referral_id>")
    def read(referral_id: uuid.UUID) -> Any:
        with sessions() as session:
            row = session.get(NaiveReferral, referral_id)
            if row is None:
                abort(404)
            return jsonify(shown(row))

    @app.get("/floor/referrals/<uuid:referral_id>")
    def read_audited(referral_id: uuid.UUID) -> Any:
        with sessions() as session:
            row = session.get(NaiveReferral, referral_id)
            if row is None:
                abort(404)
            session.add(
                NaiveAccess(
                    id=uuid.uuid4(), at=datetime.now(UTC), action="read", referral_id=row.id
                )
            )
            session.commit()
            return jsonify(shown(row))

    @app.post("/referrals")
    def create() -> Any:
        body = request.get_json()
        with sessions() as session:
            row = NaiveReferral(id=uuid.uuid4(), created_at=datetime.now(UTC), body=body)
            session.add(row)
            session.commit()
            return jsonify(shown(row)), 201

    return app


# --- serving and loading ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(app: str, model: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """``app`` served by gunicorn on loopback: the same flags for every app."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        *MODELS[model],
        "--log-level",
        "warning",
        "--config",
        "/dev/null",  # no gunicorn.conf.py from the working directory
        app,
    ]
    with log.open("a") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                try:
                    requests.get(f"{base}/livez", timeout=5)
                    break
                except (requests.ConnectionError, requests.Timeout):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn {app} did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def wrk(url: str, seconds: float, script: Path | None, headers: dict[str, str]) -> float:
    """Requests per second of one ``wrk -t2 -c16`` run; every answer must be 2xx."""
    command = ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if failed or errors:
        raise SystemExit(f"{url}: not every answer was 2xx:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise SystemExit(f"no throughput in wrk's output:\n{output}")
    return float(match.group(1))


def post_script(directory: Path, body: dict[str, Any]) -> Path:
    path = directory / f"post-{uuid.uuid4().hex}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body, ensure_ascii=False), ensure_ascii=False)}\n",
        encoding="utf-8",
    )
    return path


@contextmanager
def service_instance(directory: Path, url: str) -> Iterator[tuple[dict[str, str], str]]:
    """The service's instance folder, seeded, and a youth worker's development token."""
    from referrals import create_app
    from referrals.auth import devissuer
    from referrals.auth.principal import Role
    from referrals.config import Settings
    from referrals.runtime import OPERATOR
    from referrals.services import seeding

    instance = directory / "instance"
    env = {
        "REFERRALS_ENV": "development",
        "REFERRALS_INSTANCE_PATH": str(instance),
        "REFERRALS_DATABASE_URL": url,
        "REFERRALS_LOG_LEVEL": "WARNING",
    }
    app = create_app(Settings.from_env(env))
    runtime = app.extensions["referrals"]
    try:
        with runtime.unit_of_work() as uow:
            seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
    finally:
        runtime.dispose()
    key = devissuer.load_or_create_key(instance)
    token = devissuer.mint(
        key,
        role=Role.YOUTH_WORKER,
        unit="ungdomsjouren",
        audience="referrals-api",
        lifetime=3600 * 4,
    )
    yield env, token


def run_model(
    model: str, url: str, directory: Path, rounds: int, seconds: float
) -> dict[str, list[float]]:
    with ExitStack() as stack:
        env, token = stack.enter_context(service_instance(directory / model, url))
        auth = {"Authorization": f"Bearer {token}"}
        service = stack.enter_context(
            gunicorn("referrals:create_app()", model, env, directory / f"service-{model}.log")
        )
        naive = stack.enter_context(
            gunicorn(
                "tests.benchmarks.bench_naive:naive_app()",
                model,
                {"NAIVE_DATABASE_URL": url},
                directory / f"naive-{model}.log",
            )
        )
        created = requests.post(f"{service}/api/v1/referrals", json=BODY, headers=auth, timeout=10)
        if created.status_code != 201:
            raise SystemExit(f"service create failed: {created.status_code} {created.text}")
        plain = {k: v for k, v in BODY.items() if k != "submit"}
        naive_created = requests.post(f"{naive}/referrals", json=plain, timeout=10)
        if naive_created.status_code != 201:
            raise SystemExit(f"naive create failed: {naive_created.status_code}")
        service_post = post_script(directory, BODY)
        naive_post = post_script(directory, plain)
        service_id, naive_id = created.json()["id"], naive_created.json()["id"]
        runs = {
            "naive read": (f"{naive}/referrals/{naive_id}", None, {}),
            "floor read": (f"{naive}/floor/referrals/{naive_id}", None, {}),
            "service read": (f"{service}/api/v1/referrals/{service_id}", None, auth),
            "naive create": (f"{naive}/referrals", naive_post, {}),
            "service create": (f"{service}/api/v1/referrals", service_post, auth),
        }
        for target, script, headers in runs.values():  # warm-up: pools, imports
            wrk(target, 1, script, headers)
        figures: dict[str, list[float]] = {load: [] for load in LOADS}
        for i in range(rounds):
            order = LOADS[i % len(LOADS) :] + LOADS[: i % len(LOADS)]
            for load in order if i % 2 == 0 else tuple(reversed(order)):
                target, script, headers = runs[load]
                figures[load].append(wrk(target, seconds, script, headers))
        return figures


def report(model: str, figures: dict[str, list[float]]) -> None:
    median = {load: statistics.median(runs) for load, runs in figures.items()}
    say(f"{model}: {WORKERS} workers" + (f" x {THREADS} threads" if model == "gthread" else ""))
    for load in LOADS:
        runs = ", ".join(f"{r:.0f}" for r in figures[load])
        say(f"  {load:<15} {median[load]:8.1f} req/s   (rounds: {runs})")

    def ratio(a: str, b: str) -> str:
        paired = [x / y for x, y in zip(figures[a], figures[b], strict=True)]
        spread = f"{min(paired):.2f}-{max(paired):.2f}"
        return f"{median[a] / median[b]:.2f}  (paired per round {spread})"

    say(f"  floor / naive read            {ratio('floor read', 'naive read')}")
    say(f"  service / floor read          {ratio('service read', 'floor read')}   goal >= 0.9")
    say(f"  service / naive read          {ratio('service read', 'naive read')}   goal >= 0.8")
    say(f"  service / naive create+submit {ratio('service create', 'naive create')}   goal >= 0.7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--models", default="sync,gthread")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if unknown := [m for m in models if m not in MODELS]:
        raise SystemExit(f"unknown worker model(s) {unknown}: choose from {sorted(MODELS)}")
    if shutil.which("wrk") is None:
        raise SystemExit(
            "this benchmark needs the HTTP load generator wrk: "
            "apt-get install -y wrk (Debian/Ubuntu) or brew install wrk (macOS)"
        )
    started = time.perf_counter()
    results = {}
    try:
        with postgres_database() as url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            NaiveBase.metadata.create_all(create_engine(url))
            for model in models:
                results[model] = run_model(model, url, Path(tmp), args.rounds, args.seconds)
    except pytest.skip.Exception as exc:
        raise SystemExit(f"no PostgreSQL: {exc}") from None
    say(
        f"naive vs service: Python {sys.version.split()[0]}, PostgreSQL (throw-away database), "
        f"gunicorn on loopback, wrk -t2 -c16, {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s per load, median req/s"
    )
    for model, figures in results.items():
        report(model, figures)
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
