"""README command (1): ``referrals quickstart`` serves, and its printed tokens work."""

from __future__ import annotations

import json
import os
import re
import shutil
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
    # README's first command, in a shell that set nothing: quickstart asks for development.
    env.pop("REFERRALS_ENV", None)
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


README = Path(__file__).parents[2] / "README.md"
# The shell variables the walk-through asks the reader to fill in, and what they hold.
READER_FILLS = {"YW": "YOUTH_WORKER_UNGDOMSJOUREN", "CW": "CASEWORKER_NORRMALM"}


def _walk_through() -> list[tuple[str, str]]:
    """The quick start's shell commands, each with the ``# -> …`` answer printed under it."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("It serves on") : text.index("**(2) Install")]
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        command = ""
        for line in block.splitlines():
            if line.startswith("#"):
                if steps and not command:
                    steps[-1] = (steps[-1][0], steps[-1][1] + line.lstrip("#-> "))
                continue
            command += line + "\n"
            # A command ends at a line that neither continues nor leaves a quote open.
            if not line.endswith("\\") and command.count("'") % 2 == 0:
                steps.append((command, ""))
                command = ""
    return steps


def _literals(printed: str) -> list[tuple[str, object]]:
    """The ``"key": value`` pairs of a printed answer that are spelt out in full."""
    pairs = re.findall(r'"(\w+)": ("[^"…]*"|true|false|null)', printed)
    return [(key, json.loads(value)) for key, value in pairs]


def _found(answer: object, key: str, value: object) -> bool:
    if isinstance(answer, dict):
        return answer.get(key, object()) == value or any(
            _found(v, key, value) for v in answer.values()
        )
    if isinstance(answer, list):
        return any(_found(item, key, value) for item in answer)
    return False


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_walk_through_works_as_printed(
    quickstart: tuple[str, dict[str, str]],
) -> None:
    base, tokens = quickstart
    env = {"PATH": os.environ["PATH"]}
    answer: dict[str, object] = {}
    steps = _walk_through()
    assert len(steps) >= 10
    for command, printed in steps:
        assignment = re.fullmatch(r"(\w+)=(\S+)(\s+#.*)?\n", command)
        if assignment:
            name, value = assignment.group(1), assignment.group(2)
            if name in READER_FILLS:
                env[name] = tokens[READER_FILLS[name]]
            elif value == "…":  # "the id from that answer"
                env[name] = str(answer["id"])
            else:
                env[name] = value.replace("http://127.0.0.1:8000", base)
            continue
        result = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, (command, result.stderr)
        answer = json.loads(result.stdout)
        for key, value in _literals(printed):
            assert _found(answer, key, value), (command, key, value, answer)


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
