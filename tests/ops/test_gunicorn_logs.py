"""gunicorn, for real: every line it prints is JSON from the allow-list, printed once.

Starts ``gunicorn -c deploy/gunicorn.conf.py`` on a loopback port with its own instance
folder, drives requests that log (a corrupted row raising inside the app, a malformed
request gunicorn refuses, a forged request id) and reads what came out on stdout and
stderr.  Personal values are planted where the old plain-text configuration printed
them: in a traceback, in a request line and in a raw ``X-Request-ID``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

CONFIG = Path(__file__).parents[2] / "deploy" / "gunicorn.conf.py"
NAME, NUMBER = "Loggy Canarysson", "201003142385"
PROXY_ID = "proxy-7f3a.1:2"


@dataclass
class Server:
    base: str
    instance: Path
    env: dict[str, str]
    stdout: Path
    stderr: Path

    def token(self, role: str, unit: str | None = None) -> str:
        command = [sys.executable, "-m", "referrals.cli", "dev-token", "--role", role]
        if unit:
            command += ["--unit", unit]
        return subprocess.run(
            command, env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def lines(self) -> list[str]:
        return [
            line
            for path in (self.stdout, self.stderr)
            for line in path.read_text().splitlines()
            if line.strip()
        ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "referrals.cli", *args], env=env, check=True, capture_output=True
    )


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Server]:
    instance = tmp_path / "instance"
    env = {
        **os.environ,
        "REFERRALS_ENV": "development",
        "REFERRALS_INSTANCE_PATH": str(instance),
        "WEB_CONCURRENCY": "1",
    }
    env.pop("REFERRALS_DATABASE_URL", None)
    _cli(env, "db", "upgrade")
    _cli(env, "seed", "demo")
    port = _free_port()
    server = Server(
        f"http://127.0.0.1:{port}", instance, env, tmp_path / "out.log", tmp_path / "err.log"
    )
    with server.stdout.open("w") as out, server.stderr.open("w") as err:
        process = subprocess.Popen(
            # The command line's --bind overrides the file's: loopback only in tests.
            [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "--bind", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{server.base}/healthz", timeout=5).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass
                assert process.poll() is None, server.stderr.read_text()
                assert time.monotonic() < deadline, server.stderr.read_text()
                time.sleep(0.1)
            yield server
        finally:
            process.terminate()
            process.wait(timeout=15)


def _raw(base: str, data: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


def test_every_line_is_json_once_with_both_request_ids_and_no_personal_data(
    gunicorn: Server,
) -> None:
    youth = {"Authorization": f"Bearer {gunicorn.token('youth_worker', 'ungdomsjouren')}"}
    created = requests.post(
        f"{gunicorn.base}/api/v1/referrals",
        json={"subject": {"name": NAME, "personal_number": NUMBER}, "categories": ["drugs"]},
        headers={**youth, "X-Request-ID": PROXY_ID},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    ours = created.headers["X-Request-ID"]
    assert ours.startswith(f"{PROXY_ID}~")

    # A forged id (spaces, a personal number) is ignored, never printed.
    forged = requests.get(
        f"{gunicorn.base}/api/v1/referrals/{rid}?q={NUMBER}",
        headers={**youth, "X-Request-ID": f"x {NUMBER}"},
        timeout=5,
    )
    assert forged.status_code == 200
    assert NUMBER not in forged.headers["X-Request-ID"]

    # Corrupt the row so that reading it raises inside the app, with the planted value in
    # the exception's text: a 500 that echoes nothing, logged without its traceback.
    with sqlite3.connect(gunicorn.instance / "referrals.sqlite3") as connection:
        connection.execute("UPDATE referrals SET status = ?", (NUMBER,))
    broken = requests.get(f"{gunicorn.base}/api/v1/referrals/{rid}", headers=youth, timeout=5)
    assert broken.status_code == 500
    assert NUMBER not in broken.text

    # A request gunicorn itself refuses, before the app: its error line quotes the request.
    refused = _raw(gunicorn.base, f"GET /x?pn={NUMBER} HTTP/1.1\r\nBad {NUMBER}\r\n\r\n".encode())
    assert refused.startswith(b"HTTP/1.1 400")
    time.sleep(0.5)  # the access line is written after the response is sent

    lines = gunicorn.lines()
    records = _parse(lines)
    everything = "\n".join(lines)
    for secret in (NAME, NUMBER, NUMBER[2:], rid, "Traceback", "?q=", youth["Authorization"]):
        assert secret not in everything, secret

    # Not counting the readiness probe, which may have been retried.
    app_lines = [
        r for r in records if r["logger"] == "referrals.access" and r["route"] != "/healthz"
    ]
    access = [r for r in records if r["logger"] == "gunicorn.access" and r["route"] != "/healthz"]
    # One line each per request (create, read, broken read): the app's records are not
    # printed a second time, and gunicorn writes no access line for what it refused.
    assert len(app_lines) == 3
    assert len(access) == 3
    create_app_line = next(r for r in app_lines if r["request_id"] == ours)
    assert create_app_line["proxy_request_id"] == PROXY_ID
    create_access = next(r for r in access if r.get("request_id") == ours)
    assert create_access == {
        "time": create_access["time"],
        "level": "INFO",
        "logger": "gunicorn.access",
        "message": "request",
        "method": "POST",
        "route": "/api/v1/referrals",
        "status": 201,
        "bytes": create_access["bytes"],
        "request_id": ours,
        "proxy_request_id": PROXY_ID,
        "latency_ms": create_access["latency_ms"],
    }
    assert all("proxy_request_id" not in r for r in access if r is not create_access)
    assert {r["route"] for r in access} == {
        "/api/v1/referrals",
        "/api/v1/referrals/<uuid:referral_id>",
    }
    unhandled = [r for r in records if r["message"] == "unhandled error"]
    assert len(unhandled) == 1
    assert unhandled[0]["exception"] == "ValueError"
    assert unhandled[0]["request_id"] == broken.headers["X-Request-ID"]

    # The audit row of the proxy's request is found from the proxy's id.
    auditor = {"Authorization": f"Bearer {gunicorn.token('auditor')}"}
    events = requests.get(
        f"{gunicorn.base}/api/v1/audit/events",
        params={"referral": rid},
        headers=auditor,
        timeout=5,
    ).json()["items"]
    assert [e["action"] for e in events if e["request_id"].startswith(f"{PROXY_ID}~")] == [
        "referral:create"
    ]
