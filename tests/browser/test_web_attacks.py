"""Attacks on the web front end, from a real browser.

The hostile pages are served by a server of their own: on ``localhost`` (another site:
the session cookie, SameSite=Lax, is not sent with its POST) and on ``127.0.0.1`` at
another port (same site, other origin: the cookie is sent, so only the CSRF token and
the Origin check stand in the way).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import select

from referrals.db.models import WebSession
from tests.browser import pages
from tests.support import browser
from tests.support.live_server import LiveServer
from tests.support.web_stack import WebStack, provider_login, web_sign_in
from tests.support.witness import Witness

HOSTILE_FORM = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Win a prize</title></head><body><main><h1>Win a prize</h1>
<form method="post" action="{action}">
  <input type="hidden" name="subject-name" value="Planterad Påhittad">
  <input type="hidden" name="subject-district" value="norrmalm">
  <input type="hidden" name="categories" value="drugs">
  <input type="hidden" name="priority" value="normal">
  <input type="hidden" name="legal_basis" value="duty_to_report">
  <input type="hidden" name="narrative" value="Planterad remiss.">
  <input type="hidden" name="action" value="submit">
  <button type="submit" id="go">Claim</button>
</form></main></body></html>"""


@pytest.fixture(scope="module")
def hostile(web_stack: WebStack) -> Iterator[LiveServer]:
    action = web_stack.url(pages.INTAKE)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [HOSTILE_FORM.format(action=action).encode()]

    with LiveServer.bind() as server:
        server.serve(app)
        yield server


def outbox_size(stack: WebStack) -> int:
    with stack.api("ungdomsjouren-app") as api:
        answer = api.get(stack.url("/api/v1/referrals"), params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return len(answer.json()["items"])


def navigation_status(driver: webdriver.Chrome) -> int:
    return int(
        driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")
    )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_cross_site_form_post_without_the_csrf_token_is_refused(
    driver: webdriver.Chrome, web_stack: WebStack, hostile: LiveServer, host: str
) -> None:
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    before = outbox_size(web_stack)

    driver.get(f"http://{host}:{hostile.port}/")
    driver.find_element(By.ID, "go").click()
    browser.wait_for(driver, lambda d: d.current_url.startswith(web_stack.url("/app/")))

    assert outbox_size(web_stack) == before
    assert not pages.on_a_referral_page(driver, web_stack)
    if host == "127.0.0.1":
        # Same site: the cookie went along; the missing token is what refused it.
        assert navigation_status(driver) in (400, 403)


def test_a_page_of_another_units_referral_answers_404(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    theirs = pages.create_via_api(web_stack)
    web_sign_in(driver, web_stack, "ung-kalle", pages.MINE)
    for path in (f"{pages.MINE}/{theirs}", f"{pages.MINE}/{theirs}/edit"):
        assert pages.status_of(driver, web_stack, path) == 404, path
    assert pages.status_of(driver, web_stack, f"{pages.MINE}/{uuid.uuid4()}") == 404
    driver.get(web_stack.url(f"{pages.MINE}/{theirs}"))
    assert pages.API_BODY["subject"]["name"] not in pages.text(driver)


def test_a_youth_workers_session_cannot_open_auditor_pages(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    referral = pages.create_via_api(web_stack)
    web_sign_in(driver, web_stack, "ung-anna", pages.MINE)
    for path in (
        "/app/audit/",
        "/app/audit/events",
        "/app/audit/break-glass",
        f"/app/audit/referrals/{referral}",
    ):
        assert pages.status_of(driver, web_stack, path) in (403, 404), path


def test_the_session_cookie_carries_the_right_flags(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    web_sign_in(driver, web_stack, "ung-anna", pages.MINE)
    ours = [c for c in driver.get_cookies() if c["domain"] == "127.0.0.1"]
    sessions = [c for c in ours if "referrals" in c["name"]]
    assert len(sessions) == 1, ours
    cookie = sessions[0]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] in ("Lax", "Strict")
    assert cookie["path"] == "/"
    assert "domain" not in cookie or not cookie["domain"].startswith(".")
    # Opaque: no token, no JSON, no signed payload a reader could decode.
    assert "eyJ" not in cookie["value"]
    assert "." not in cookie["value"]
    # Development over plain http cannot set Secure (nor the __Host- prefix); production does.
    assert cookie["secure"] is False
    assert not cookie["name"].startswith("__Host-")
    # Script on the page cannot read it.
    assert cookie["name"] not in driver.execute_script("return document.cookie")


def test_an_expired_session_keeps_the_typed_form(
    driver: webdriver.Chrome, web_stack: WebStack, witness: Witness
) -> None:
    pages.watch_typed(witness)
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    pages.fill_intake(driver)
    # The youth worker talks for 20 minutes; the session's idle time (15) runs out.
    with web_stack.runtime.database.sessions() as session:
        for row in session.scalars(select(WebSession)):
            row.last_seen_at -= timedelta(minutes=20)
        session.commit()
    before = outbox_size(web_stack)

    pages.submit(driver)
    browser.wait_for_url(driver, web_stack.url("/app/sign-in"))
    assert outbox_size(web_stack) == before  # nothing sent without a session
    # Nothing typed travels in the address or sits in the browser.
    assert "P%C3%A5hittad" not in driver.current_url
    assert "121212" not in driver.current_url  # the number 20121212-1212 (a uuid may hold "1212")
    assert driver.execute_script("return localStorage.length + sessionStorage.length") == 0

    driver.find_element(By.CSS_SELECTOR, "a[href*='/app/sign-in/start']").click()
    # The provider may still know the person (single sign-on) or ask again.
    browser.wait_for(
        driver,
        lambda d: (
            d.find_elements(By.NAME, "login")
            or d.current_url.startswith(web_stack.url(pages.INTAKE))
        ),
    )
    if driver.current_url.startswith(web_stack.idp.issuer):
        provider_login(driver, web_stack.idp, "ung-anna")
    browser.wait_for_url(driver, web_stack.url(pages.INTAKE))

    assert pages.typed_values(driver) == pages.TYPED
    for name, code in pages.CHOSEN.items():
        assert pages.option(driver, name, code).is_selected(), name
    pages.submit(driver)
    pages.referral_id_from(driver, web_stack)
    assert outbox_size(web_stack) == before + 1


def test_a_kept_form_is_not_given_to_someone_else(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    pages.fill_intake(driver)
    with web_stack.runtime.database.sessions() as session:
        for row in session.scalars(select(WebSession)):
            row.last_seen_at -= timedelta(minutes=20)
        session.commit()
    pages.submit(driver)
    browser.wait_for_url(driver, web_stack.url("/app/sign-in"))
    # Another person at the same browser signs in: the provider forgets the first one (its
    # cookies share the host with ours, not the names), the app keeps its cookie.
    for cookie in driver.get_cookies():
        if "referrals" not in cookie["name"]:
            driver.execute_cdp_cmd(
                "Network.deleteCookies", {"name": cookie["name"], "domain": cookie["domain"]}
            )
    assert any("referrals" in c["name"] for c in driver.get_cookies())
    driver.find_element(By.CSS_SELECTOR, "a[href*='/app/sign-in/start']").click()
    provider_login(driver, web_stack.idp, "ung-kalle")
    browser.wait_for_url(driver, web_stack.url(pages.INTAKE))
    assert pages.TYPED["subject-name"] not in driver.page_source
    assert pages.TYPED["narrative"] not in driver.page_source
