"""Metrics of real processes: gunicorn's workers added up, the worker's and the sealer's
own ports.

gunicorn runs ``deploy/gunicorn.conf.py`` with two sync workers on loopback: requests are
spread over both, each counts its own into PROMETHEUS_MULTIPROC_DIR, and any scrape (which
one worker answers) must report the sum; a worker killed and replaced keeps its counts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.metrics import AUTHORIZATION, TOKEN, value

CONFIG = Path(__file__).parents[2] / "deploy" / "gunicorn.conf.py"
REQUESTS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "referrals.cli", *args], env=env, check=True, capture_output=True
    )


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "REFERRALS_ENV": "development",
        "REFERRALS_INSTANCE_PATH": str(tmp_path / "instance"),
        "REFERRALS_METRICS_TOKEN": TOKEN,
    }
    for name in ("REFERRALS_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    _cli(env, "db", "upgrade")
    _cli(env, "seed", "demo")
    return env


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, **kwargs: object) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=5, **kwargs).status_code == 200:  # type: ignore[arg-type]
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.fixture
def gunicorn(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "multiproc"
    env = {**environment, "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "--bind", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/healthz", process, log)
            yield f"http://127.0.0.1:{port}", folder
        finally:
            process.terminate()
            process.wait(timeout=15)


def _scrape(url: str) -> str:
    response = requests.get(f"{url}/metrics", headers=AUTHORIZATION, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def _pids(folder: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("counter_*.db")}


def _readyz(base: str, count: int) -> None:
    def one(_: int) -> int:
        # A new connection each time, so the kernel hands requests to either worker.
        with requests.Session() as session:
            return session.get(f"{base}/readyz", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def test_every_scrape_adds_up_every_gunicorn_worker(gunicorn: tuple[str, Path]) -> None:
    base, folder = gunicorn
    # The service answers as soon as one worker is up, and the kernel may hand a burst to
    # one worker: send rounds until both have answered, counting every request sent.
    sent = 0
    deadline = time.monotonic() + 30
    while True:
        _readyz(base, REQUESTS)
        sent += REQUESTS
        if len(_pids(folder)) == 2:
            break
        assert time.monotonic() < deadline, "both workers should have answered some requests"
    for _ in range(6):  # whichever worker answers the scrape
        text = _scrape(base)
        assert value(text, "referrals_http_requests_total", route="/readyz") == sent
        assert value(text, "referrals_ready") == 1

    # A worker killed outright is replaced; what it counted still counts.
    victim = min(_pids(folder))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len(_pids(folder) - {victim}) < 2 and time.monotonic() < deadline:
        _readyz(base, 8)
        time.sleep(0.2)
    text = _scrape(base)
    counted = value(text, "referrals_http_requests_total", route="/readyz") or 0
    assert counted >= sent + 8
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401


PROCESSES = {
    "referrals_worker_rounds_total": ["worker", "--interval", "0.2"],
    "referrals_sealer_rounds_total": ["audit", "seal", "--follow", "--interval", "0.2"],
}


def test_the_worker_and_the_sealer_serve_their_own_metrics(
    environment: dict[str, str], tmp_path: Path
) -> None:
    started: list[tuple[str, str, subprocess.Popen[bytes], Path]] = []
    try:
        for family, command in PROCESSES.items():
            port = _free_port()
            log = tmp_path / f"{command[0]}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "referrals.cli", *command, "--metrics-port", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            started.append((family, f"http://127.0.0.1:{port}/metrics", process, log))
        for family, url, process, log in started:
            _check_own_metrics(family, url, process, log)
    finally:
        for _, _, process, _ in started:
            process.terminate()
            process.wait(timeout=15)
    # Every line they printed is JSON (wsgiref's plain request lines are silenced).
    for _, _, _, log in started:
        for line in log.read_text().splitlines():
            assert line.startswith("{"), line


def _check_own_metrics(family: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    _wait_for(url, process, log, headers=AUTHORIZATION)
    deadline = time.monotonic() + 20
    while True:
        text = requests.get(url, headers=AUTHORIZATION, timeout=5).text
        if (value(text, family, outcome="ok") or 0) >= 1:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    # Its own families only: no request families in a process that serves none.
    assert "referrals_http_requests" not in text
    refused = requests.get(url, timeout=5)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    text = requests.get(url, headers=AUTHORIZATION, timeout=5).text
    assert value(text, "referrals_metrics_refusals_total", reason="missing") == 1
    assert value(text, "referrals_metrics_refusals_total", reason="invalid") == 1
