"""The closed loop, end to end in a real browser on a phone-sized screen.

A youth worker signs in through the provider's login page, opens and submits a referral
at 360x640; the receiving unit's case system reads and accepts it through the API; the
youth worker sees the new status on "My referrals"; an auditor signs in and finds the
caseworker's read in the referral's access log.
"""

from __future__ import annotations

from selenium import webdriver
from selenium.webdriver.common.by import By

from referrals.domain.codes import Status
from referrals.domain.labels import label
from tests.browser import pages
from tests.support import browser
from tests.support.web_stack import WebStack, provider_login, web_sign_in, web_sign_out
from tests.support.witness import Witness


def test_a_referral_goes_round_the_loop(
    driver: webdriver.Chrome, web_stack: WebStack, witness: Witness
) -> None:
    pages.watch_typed(witness)
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    assert browser.viewport(driver) == browser.PHONE
    # One screen wide on the phone: nothing to scroll sideways.
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 360
    pages.fill_intake(driver)
    browser.screenshot(driver, "intake-filled-phone")
    pages.submit(driver)
    referral_id = pages.referral_id_from(driver, web_stack)
    assert label("requested", Status, "sv") in pages.text(driver)
    # Nothing the youth worker typed is in the address bar or the browser's storage.
    assert "121212" not in driver.current_url  # the number 20121212-1212 (a uuid may hold "1212")
    assert driver.execute_script("return localStorage.length + sessionStorage.length") == 0

    with web_stack.api("norrmalm-system") as caseworker:
        url = web_stack.url(f"/api/v1/referrals/{referral_id}")
        read = caseworker.get(url)
        assert read.status_code == 200
        # Two-phase disclosure: the decision view until the unit accepts.
        assert read.json()["disclosure"] == "decision"
        assert pages.TYPED["subject-name"] not in str(read.json())
        accepted = caseworker.post(f"{url}/accept", json={})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["subject"]["name"] == pages.TYPED["subject-name"]

    driver.get(web_stack.url(pages.MINE))
    card = driver.find_element(By.XPATH, f"//a[contains(@href, '{referral_id}')]/ancestor::li[1]")
    assert label("accepted", Status, "sv") in card.text

    # The auditor, at a computer of their own.
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.set_viewport(driver, *browser.DESKTOP)

    access_log = f"/app/audit/referrals/{referral_id}"
    web_sign_in(driver, web_stack, "revisor", access_log)
    rows = [
        row.text
        for row in driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
        if "norrmalm-system" in row.text
    ]
    assert any("referral:read" in row for row in rows), rows
    assert any("referral:accept" in row for row in rows), rows


def test_sign_out_ends_the_session_here_and_at_the_provider(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    web_sign_in(driver, web_stack, "ung-anna", pages.MINE)
    web_sign_out(driver, web_stack)
    assert pages.status_of(driver, web_stack, pages.MINE) == 302
    # Signed out at the provider too: signing in again asks for the login name.
    driver.get(web_stack.url(pages.MINE))
    driver.find_element(By.CSS_SELECTOR, "a[href*='/app/sign-in/start']").click()
    provider_login(driver, web_stack.idp, "ung-anna")
