""".ci/run: README command (2) exactly, after installing what the browser tests need."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CI_RUN = ROOT / ".ci" / "run"


def readme_command_2() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**(2)", 1)[1]
    match = re.search(r"```sh\n(.+?)\n```", section, re.S)
    assert match is not None, "README command (2) has no sh block"
    return match.group(1).strip()


def test_ci_runs_readme_command_2_exactly() -> None:
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert readme_command_2() in lines


def test_ci_installs_chromium_and_its_driver_before_the_tests() -> None:
    script = CI_RUN.read_text()
    install = script.index("install -y --no-install-recommends chromium chromium-driver")
    assert script.index('apt_get[@]}" update') < install < script.index(readme_command_2())
    # Only when one of the two is missing: a machine that has them is left alone.
    guard = script.rfind("\nif ", 0, install)
    assert "/usr/bin/chromium" in script[guard:install]
    assert "/usr/bin/chromedriver" in script[guard:install]


def test_ci_run_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
