"""Apps that trust the real loopback OpenID Provider (tests/support/idp.py).

``make_idp_app(issuer, **overrides)`` builds an app on the test's database that trusts
only ``issuer`` (development tokens off, as in production); the demo units are seeded
once per test.  Each app has its own JWKS cache, so each one fetches discovery and the
JWKS on its first authenticated request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from referrals import create_app
from referrals.config import Settings
from referrals.db.engine import Database
from tests.conftest import seed_units
from tests.support.clock import FakeClock
from tests.support.idp import TestIdP

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_idp_app(settings: Settings, database: Database, clock: FakeClock) -> MakeApp:
    seeded = False

    def make(issuer: str, **overrides: Any) -> Flask:
        nonlocal seeded
        app = create_app(
            settings.with_overrides(
                oidc_issuer=issuer,
                oidc_audience="referrals-api",
                dev_tokens=False,
                **overrides,
            ),
            database=database,
            clock=clock,
        )
        if not seeded:
            seed_units(app)
            seeded = True
        return app

    return make


@pytest.fixture
def idp_app(make_idp_app: MakeApp, oidc_provider: TestIdP) -> Flask:
    return make_idp_app(oidc_provider.issuer)


@pytest.fixture
def idp_client(idp_app: Flask) -> FlaskClient:
    return idp_app.test_client()
