"""A fresh instance folder for command-line tests, and the environment that points at it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def env(instance: Path) -> dict[str, str]:
    return {"REFERRALS_ENV": "development", "REFERRALS_INSTANCE_PATH": str(instance)}
