"""The whole service on loopback for a real browser: live app, test IdP, test RP.

The live server is the real app (``create_app``) on a migrated SQLite file with the demo
units, configured the way a deployment is (``REFERRALS_*`` variables) with the test
OpenID Provider as issuer and the provider's web client as its web client.  Next to it, at
``/_test-rp``, a tiny test-only relying party (tests/support/relying_party.py).  Used by
the browser tests' fixtures and by tests/benchmarks/bench_pages.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

# Where the web front end receives the provider's answer and where the provider may send
# a person back after signing out (referrals/web/signin.py).
WEB_CALLBACKS = ["/app/sign-in/callback", CALLBACK]
WEB_SIGNED_OUT = ["/app/signed-out", SIGNED_OUT]
PASSWORD = "any"  # the provider's login page takes any password for a login name


@dataclass
class WebStack:
    server: LiveServer
    idp: TestIdP
    app: Flask
    relying_party: Flask

    def url(self, path: str = "/") -> str:
        return self.server.url(path)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.extensions["referrals"]
        return runtime

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
        "REFERRALS_WEB_RESOURCE": default_resources()[0]["indicator"],
        "REFERRALS_LOG_LEVEL": "WARNING",
    }


@contextmanager
def running_web_stack(workdir: Path) -> Iterator[WebStack]:
    """Bind the live server's port, start the provider with a web client for that origin,
    then build, migrate, seed and serve the app."""
    with LiveServer.bind() as server:
        client = web_client(server.origin, WEB_CALLBACKS, WEB_SIGNED_OUT)
        with TestIdP.start(
            workdir / "idp", default_clients(), default_resources(), web=client
        ) as idp:
            database_url = f"sqlite:///{workdir / 'referrals.sqlite3'}"
            upgrade(database_url)
            settings = Settings.from_env(web_environment(workdir / "instance", database_url, idp))
            app = create_app(settings)
            runtime: Runtime = app.extensions["referrals"]
            with runtime.unit_of_work() as uow:
                seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
            relying_party = create_relying_party(idp.issuer, client, server.origin)
            server.serve(DispatcherMiddleware(app, {MOUNT: relying_party}))
            try:
                yield WebStack(server, idp, app, relying_party)
            finally:
                server.stop()
                runtime.database.dispose()


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


def web_sign_in(driver: webdriver.Chrome, stack: WebStack, login: str, next_path: str) -> None:
    """Open ``next_path`` signed out, follow the sign-in page's button to the provider's
    login page, sign in there as ``login`` and land back on ``next_path``."""
    driver.get(stack.url(next_path))
    browser.wait_for_url(driver, stack.url("/app/sign-in"))
    driver.find_element(By.CSS_SELECTOR, "a[href*='/app/sign-in/start']").click()
    provider_login(driver, stack.idp, login)
    browser.wait_for_url(driver, stack.url(next_path))


def web_sign_out(driver: webdriver.Chrome, stack: WebStack) -> None:
    """The page's sign-out button, then the provider's "sign me out" (RP-initiated logout)."""
    driver.find_element(By.CSS_SELECTOR, "form[action$='/app/sign-out'] button").click()
    signed_out = stack.url("/app/signed-out")
    browser.wait_for(
        driver,
        lambda d: (
            d.current_url.startswith(stack.idp.issuer) or d.current_url.startswith(signed_out)
        ),
    )
    if driver.current_url.startswith(stack.idp.issuer):
        driver.find_element(By.CSS_SELECTOR, "button[name=logout][value=yes]").click()
    browser.wait_for_url(driver, signed_out)
