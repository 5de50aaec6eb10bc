"""The harness itself: the browser, the provider's web client and login page, the helpers.

Each helper is shown failing on a page made to fail it, so that a green run of the page
tests means something.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc import jwt
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support import browser
from tests.support.relying_party import MOUNT
from tests.support.web_stack import WebStack, provider_login


def test_the_viewport_is_a_phone(driver: webdriver.Chrome, web_stack: WebStack) -> None:
    driver.get(web_stack.url(f"{MOUNT}/accessible"))
    assert browser.viewport(driver) == browser.PHONE
    browser.set_viewport(driver, *browser.DESKTOP)
    assert browser.viewport(driver) == browser.DESKTOP


@pytest.mark.parametrize("language", ["sv", "en"])
def test_browser_asks_for_the_chosen_language(
    driver: webdriver.Chrome, web_stack: WebStack, language: str
) -> None:
    browser.set_language(driver, language)
    driver.get(web_stack.url(f"{MOUNT}/language"))
    assert driver.find_element(By.ID, "accept-language").text == language


def test_sign_in_through_the_provider_login_page_gives_an_api_token(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    """Authorization code + PKCE in a real browser: login page, consent page, callback;
    the access token is a JWT for the API with the login's role and unit, and the live API
    accepts it."""
    driver.get(web_stack.url(f"{MOUNT}/login"))
    browser.wait_for_url(driver, web_stack.idp.issuer)
    asked = web_stack.relying_party.extensions["test_rp_authorize_url"]
    assert "code_challenge=" in asked
    assert "code_challenge_method=S256" in asked
    provider_login(driver, web_stack.idp, "ung-anna")

    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "api-status"))
    assert driver.find_element(By.ID, "api-status").text == "200"
    access = web_stack.rp_tokens["access_token"]
    claims = jwt.decode(access, web_stack.idp.keys).claims
    assert claims["aud"] == "referrals-api"
    assert claims["roles"] == ["youth_worker"]
    assert claims["unit"] == "ungdomsjouren"
    assert set(claims["scope"].split()) >= {"referrals:read", "referrals:write"}


def test_a_login_without_a_role_gets_no_access(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    driver.get(web_stack.url(f"{MOUNT}/login"))
    provider_login(driver, web_stack.idp, "okand-person")
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "api-status"))
    assert driver.find_element(By.ID, "api-status").text == "403"
    claims = jwt.decode(web_stack.rp_tokens["access_token"], web_stack.idp.keys).claims
    assert "roles" not in claims


def test_rp_initiated_logout_ends_the_provider_session(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    driver.get(web_stack.url(f"{MOUNT}/login"))
    provider_login(driver, web_stack.idp, "revisor")
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "api-status"))

    driver.get(web_stack.url(f"{MOUNT}/logout"))
    browser.wait_for_url(driver, web_stack.idp.issuer)
    driver.find_element(By.CSS_SELECTOR, "button[name=logout][value=yes]").click()
    browser.wait_for_url(driver, web_stack.url(f"{MOUNT}/signed-out"))

    # Signed out at the provider: the next sign-in asks for the login again.
    driver.get(web_stack.url(f"{MOUNT}/login"))
    browser.wait_for_url(driver, web_stack.idp.issuer)
    browser.wait_for(driver, lambda d: d.find_elements(By.NAME, "login"))


def test_axe_passes_an_accessible_page(driver: webdriver.Chrome, web_stack: WebStack) -> None:
    driver.get(web_stack.url(f"{MOUNT}/accessible"))
    browser.assert_accessible(driver)


def test_axe_lists_violations_by_rule_and_target(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    driver.get(web_stack.url(f"{MOUNT}/inaccessible"))
    with pytest.raises(browser.AxeViolations) as failure:
        browser.assert_accessible(driver)
    message = str(failure.value)
    for rule in ("image-alt", "label", "color-contrast"):
        assert f"- {rule} " in message
    # Each rule is followed by the CSS selectors of the elements that break it.
    assert "\n    img" in message
    assert "\n    input" in message


def test_foreign_references_finds_other_origins(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    driver.get(web_stack.url(f"{MOUNT}/accessible"))
    assert browser.foreign_references(driver) == []
    driver.execute_script(
        """
        const link = document.createElement('link');
        link.rel = 'stylesheet'; link.href = 'https://cdn.example.net/x.css';
        document.head.append(link);
        const img = document.createElement('img');
        img.alt = ''; img.src = 'https://fonts.example.org/a.png';
        document.body.append(img);
        const a = document.createElement('a');
        a.href = 'https://example.com/about'; a.textContent = 'about';
        document.body.append(a);
        """
    )
    assert browser.foreign_references(driver) == [
        "https://cdn.example.net/x.css",
        "https://example.com/about",
        "https://fonts.example.org/a.png",
    ]
    assert browser.foreign_references(driver, links=False) == [
        "https://cdn.example.net/x.css",
        "https://fonts.example.org/a.png",
    ]


def test_keyboard_helper_reaches_and_operates_controls(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    driver.get(web_stack.url(f"{MOUNT}/accessible"))
    browser.tab_to(driver, browser.named("name"))
    browser.press(driver, "Kim Påhittad")
    browser.tab_to(driver, browser.named("priority"))
    browser.press(driver, Keys.ARROW_RIGHT)
    assert driver.find_element(By.ID, "p-urgent").is_selected()
    assert driver.find_element(By.ID, "name").get_attribute("value") == "Kim Påhittad"
    with pytest.raises(AssertionError, match="not reachable"):
        browser.tab_to(driver, browser.named("no-such-field"), limit=10)


@pytest.mark.parametrize(("ci", "outcome"), [("", "skip"), ("true", "fail")])
def test_a_missing_browser_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: str
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", ci)
    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="no-chromium"):
        browser.require_browser()
