"""/docs renders in a browser that can reach nothing but the service itself."""

from __future__ import annotations

from selenium import webdriver

from tests.support import browser
from tests.support.web_stack import WebStack


def test_docs_render_with_the_network_cut(driver: webdriver.Chrome, web_stack: WebStack) -> None:
    browser.set_viewport(driver, *browser.DESKTOP)
    driver.get(web_stack.url("/docs"))
    # The viewer draws the operations from openapi.json with its script: their paths on the
    # page mean the script ran, the spec loaded and nothing needed the network beyond us.
    browser.wait_for(
        driver,
        lambda d: "/api/v1/referrals" in d.execute_script("return document.body.innerText"),
        timeout=5,
    )
    # Nothing loaded or to be loaded from elsewhere; a hyperlink (the licence's) is fine.
    assert browser.foreign_references(driver, links=False) == []
