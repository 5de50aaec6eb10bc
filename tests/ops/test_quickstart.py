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


def test_the_printed_web_address_signs_a_demo_user_in_over_plain_http(
    quickstart: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, _tokens = quickstart
    printed = (tmp_path / "quickstart.log").read_text()
    assert f"Web pages: {base}/app/" in printed
    browser = requests.Session()
    home = browser.get(f"{base}/app/", timeout=5, allow_redirects=False)
    assert home.status_code == 302
    page = browser.get(f"{base}/app/dev/sign-in", timeout=5)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    signed_in = browser.post(
        f"{base}/app/dev/sign-in",
        data={"identity": "youth_worker@ungdomsjouren", "csrf_token": token.group(1)},
        timeout=5,
        allow_redirects=False,
    )
    assert signed_in.status_code == 302
    # Development over http: a cookie without Secure, which the browser sends back.
    assert "Secure" not in signed_in.headers["Set-Cookie"]
    mine = browser.get(f"{base}/app/referrals", timeout=5, allow_redirects=False)
    assert mine.status_code == 200
    assert "Mina remisser" in mine.text
