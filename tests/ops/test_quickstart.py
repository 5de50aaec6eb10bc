"""README command (1): ``referrals quickstart`` serves, and its printed tokens work."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

BODY = {
    "subject": {"name": "Exempel Exempelsson", "district": "sodermalm"},
    "categories": ["homelessness"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = {**os.environ, "REFERRALS_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("REFERRALS_DATABASE_URL", None)
    log = tmp_path / "quickstart.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "referrals.cli", "quickstart", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            tokens = dict(re.findall(r"^(\w+)_TOKEN=(\S+)$", log.read_text(), re.MULTILINE))
            yield base, tokens
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_printed_tokens_drive_create_submit_accept(
    quickstart: tuple[str, dict[str, str]],
) -> None:
    base, tokens = quickstart
    assert set(tokens) == {
        "YOUTH_WORKER_UNGDOMSJOUREN",
        "CASEWORKER_NORRMALM",
        "CASEWORKER_SODERMALM",
        "AUDITOR",
        "ADMIN",
    }

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[name]}"}

    created = requests.post(
        f"{base}/api/v1/referrals", json=BODY, headers=auth("YOUTH_WORKER_UNGDOMSJOUREN"), timeout=5
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    submitted = requests.post(
        f"{base}/api/v1/referrals/{rid}/submit",
        json={},
        headers=auth("YOUTH_WORKER_UNGDOMSJOUREN"),
        timeout=5,
    )
    assert submitted.json()["receiving_unit"] == "sodermalm"
    wrong_unit = requests.post(
        f"{base}/api/v1/referrals/{rid}/accept",
        json={},
        headers=auth("CASEWORKER_NORRMALM"),
        timeout=5,
    )
    assert wrong_unit.status_code == 404
    accepted = requests.post(
        f"{base}/api/v1/referrals/{rid}/accept",
        json={},
        headers=auth("CASEWORKER_SODERMALM"),
        timeout=5,
    )
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
