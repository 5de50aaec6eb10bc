"""Fixtures for every HTTP-level test in this folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.api.helpers import Actors, forbid_server_errors


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """No API test may provoke a 5xx, whatever status it asserts itself."""
    if "app" not in request.fixturenames:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    seen = forbid_server_errors(app)
    yield
    assert seen == []


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)
