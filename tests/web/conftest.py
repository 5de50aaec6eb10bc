"""Fixtures for the page tests: the API's rule applies, no page may answer 500.

503 is the one 5xx a page may give: the fail-closed answer when the audit trail or the
identity provider is unavailable, which tests provoke on purpose."""

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
    assert [s for s in seen if not s.endswith("-> 503")] == []
