"""Fixtures for the page tests: the API's rule applies, no page may answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.api.helpers import forbid_server_errors


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    if "app" not in request.fixturenames:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    seen = forbid_server_errors(app)
    yield
    assert seen == []
