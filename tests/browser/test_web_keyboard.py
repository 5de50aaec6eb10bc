"""The intake flow, keyboard only: Tab to each field, type, Space and arrows for the
codes, Enter on the button.  No element is clicked."""

from __future__ import annotations

from selenium import webdriver
from selenium.webdriver.common.keys import Keys

from referrals.domain.codes import Status
from referrals.domain.labels import label
from tests.browser import pages
from tests.support import browser
from tests.support.web_stack import WebStack, web_sign_in


def choose(driver: webdriver.Chrome, name: str, code: str) -> None:
    """A radio group: Tab lands on one option, arrows move and choose."""
    browser.tab_to(driver, browser.named(name))
    for _ in range(12):
        if browser.active(driver).get_attribute("value") == code:
            break
        browser.press(driver, Keys.ARROW_DOWN)
    else:
        raise AssertionError(f"{code} not reachable with the arrow keys in {name}")
    if not browser.active(driver).is_selected():
        browser.press(driver, Keys.SPACE)
    assert browser.active(driver).is_selected()


def test_the_intake_flow_with_the_keyboard_alone(
    driver: webdriver.Chrome, web_stack: WebStack
) -> None:
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")

    browser.tab_to(driver, browser.named("subject-name"))
    browser.press(driver, pages.TYPED["subject-name"])
    browser.tab_to(driver, browser.named("subject-personal_number"))
    browser.press(driver, pages.TYPED["subject-personal_number"])
    district = browser.tab_to(driver, browser.named("subject-district"))
    for _ in range(12):
        if district.get_attribute("value") == pages.DISTRICT:
            break
        browser.press(driver, Keys.ARROW_DOWN)
    assert district.get_attribute("value") == pages.DISTRICT

    browser.tab_to(driver, browser.with_value("categories", pages.CHOSEN["categories"]))
    browser.press(driver, Keys.SPACE)
    assert browser.active(driver).is_selected()
    choose(driver, "priority", pages.CHOSEN["priority"])
    choose(driver, "legal_basis", pages.CHOSEN["legal_basis"])
    browser.tab_to(driver, browser.named("place_met"))
    browser.press(driver, pages.TYPED["place_met"])
    browser.tab_to(driver, browser.named("narrative"))
    browser.press(driver, pages.TYPED["narrative"])

    browser.tab_to(driver, browser.with_value("action", "submit"))
    browser.press(driver, Keys.ENTER)
    pages.referral_id_from(driver, web_stack)
    assert label("requested", Status, "sv") in pages.text(driver)
