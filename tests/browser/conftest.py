"""Fixtures for the real-browser tests: one live server, one provider, one Chromium.

All three are per session (starting Chromium or the provider costs about a second each);
each test gets the browser back with no cookies, at phone size, asking for Swedish.

The live server is the real app (``create_app``) on a migrated SQLite file with the demo
units, configured the way a deployment is (``REFERRALS_*`` variables) with the test
OpenID Provider as issuer and the provider's web client as its web client.  Next to it, at
``/_test-rp``, a tiny test-only relying party (tests/support/relying_party.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from selenium import webdriver
from selenium.webdriver.common.by import By
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from referrals import create_app
from referrals.config import Settings
from referrals.db.migrate import upgrade
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from tests.support import browser
from tests.support.idp import TestIdP, default_clients, default_resources, web_client
from tests.support.live_server import LiveServer
from tests.support.relying_party import CALLBACK, MOUNT, SIGNED_OUT, create_relying_party
from tests.support.witness import Witness

# Where the web front end receives the provider's answer and where the provider may send
# a person back after signing out.
WEB_CALLBACKS = ["/app/auth/callback", CALLBACK]
WEB_SIGNED_OUT = ["/app/", "/app/signed-out", SIGNED_OUT]
PASSWORD = "any"  # the provider's login page accepts any password for a known login


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)


@dataclass
class WebStack:
    server: LiveServer
    idp: TestIdP
    app: Flask
    relying_party: Flask

    def url(self, path: str = "/") -> str:
        return self.server.url(path)

    @property
    def rp_tokens(self) -> dict[str, Any]:
        tokens: dict[str, Any] = self.relying_party.extensions["test_rp_tokens"]
        return tokens

    def api(self, client_id: str) -> requests.Session:
        """A requests session calling the live API as a machine client of the provider."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.idp.token(client_id)}"
        return session


def web_environment(instance: Path, database_url: str, idp: TestIdP) -> dict[str, str]:
    """The live server's configuration, as a deployment would give it."""
    assert idp.web is not None
    return {
        "REFERRALS_ENV": "development",
        "REFERRALS_INSTANCE_PATH": str(instance),
        "REFERRALS_DATABASE_URL": database_url,
        "REFERRALS_OIDC_ISSUER": idp.issuer,
        "REFERRALS_WEB_CLIENT_ID": idp.web["client_id"],
        "REFERRALS_WEB_CLIENT_SECRET": idp.web["client_secret"],
        "REFERRALS_WEB_SCOPE": idp.web["scope"],
        "REFERRALS_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def web_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebStack]:
    browser.require_browser()
    # Only now: a skipped run must not leave the witness with nothing seen.
    witness: Witness = request.getfixturevalue("witness")
    workdir = tmp_path_factory.mktemp("web")
    with LiveServer.bind() as server:
        client = web_client(server.origin, WEB_CALLBACKS, WEB_SIGNED_OUT)
        with TestIdP.start(
            workdir / "idp", default_clients(), default_resources(), web=client
        ) as idp:
            database_url = f"sqlite:///{workdir / 'referrals.sqlite3'}"
            upgrade(database_url)
            settings = Settings.from_env(web_environment(workdir / "instance", database_url, idp))
            app = create_app(settings)
            witness.watch(app)
            runtime: Runtime = app.extensions["referrals"]
            with runtime.unit_of_work() as uow:
                seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
            relying_party = create_relying_party(idp.issuer, client, server.origin)
            server.serve(DispatcherMiddleware(app, {MOUNT: relying_party}))
            try:
                yield WebStack(server, idp, app, relying_party)
            finally:
                runtime.database.dispose()


@pytest.fixture(scope="session")
def chromium(web_stack: WebStack) -> Iterator[webdriver.Chrome]:
    driver = browser.start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def driver(chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The session's browser, signed out everywhere, at phone size, asking for Swedish."""
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.enable", {})
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Network.clearBrowserCache", {})
    browser.set_language(chromium, "sv")
    browser.set_viewport(chromium, *browser.PHONE)
    return chromium


def provider_login(driver: webdriver.Chrome, idp: TestIdP, login: str) -> None:
    """On the provider's login page: type the login name and a password, then consent."""
    browser.wait_for_url(driver, idp.issuer)
    browser.wait_for(driver, lambda d: d.find_elements(By.NAME, "login"))
    driver.find_element(By.NAME, "login").send_keys(login)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The consent page (first sign-in of this login with this client), then back home.
    browser.wait_for(
        driver,
        lambda d: (
            not d.current_url.startswith(idp.issuer)
            or d.find_elements(By.CSS_SELECTOR, "form input[name=prompt][value=consent]")
        ),
    )
    if driver.current_url.startswith(idp.issuer):
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        browser.wait_for(driver, lambda d: not d.current_url.startswith(idp.issuer))
