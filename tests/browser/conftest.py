"""Fixtures for the real-browser tests: one live server, one provider, one Chromium.

All three are per session (starting Chromium or the provider costs about a second each);
each test gets the browser back with no cookies, at phone size, asking for Swedish.
See tests/support/web_stack.py for what is served, and tests/support/browser.py for the
browser and the page checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.support import browser
from tests.support.web_stack import WebStack, running_web_stack
from tests.support.witness import Witness


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith("tests/browser/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def web_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebStack]:
    browser.require_browser()
    # Only now: a skipped run must not leave the witness with nothing seen.
    witness: Witness = request.getfixturevalue("witness")
    with running_web_stack(tmp_path_factory.mktemp("web")) as stack:
        witness.watch(stack.app)
        # Ready when an authenticated, audited API call goes through (the witness then
        # has an event to check even when only pages without case data are visited).
        with stack.api("auditor-app") as api:
            answer = api.get(stack.url("/api/v1/units"))
        assert answer.status_code == 200, answer.text
        yield stack


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
