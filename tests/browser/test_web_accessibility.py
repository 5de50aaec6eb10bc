"""Every page, in Swedish and in English: axe-core finds no WCAG 2.1 A/AA violation, the
page names its language, and nothing on it comes from another origin.

One test per role and language signs in once and walks its pages; the failures of all
pages are reported together.  With ``REFERRALS_SCREENSHOTS=1`` the walk also saves the
README's screenshots, at phone and desktop size.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.browser import pages
from tests.support import browser
from tests.support.web_stack import WebStack, web_sign_in

# Violations found and reported but not yet fixed, by (page, axe rule): each is allowed
# on its page only, and the walk fails once it is gone so that the entry is removed.
KNOWN: dict[tuple[str, str], str] = {}

# Pages whose screenshots the README shows (Swedish, the default).
SCREENSHOTS = {"intake", "intake-errors", "my-referrals", "referral", "audit-chain", "access-log"}


class Walk:
    """Visits pages and collects what is wrong with each."""

    def __init__(self, driver: webdriver.Chrome, stack: WebStack, language: str) -> None:
        self.driver, self.stack, self.language = driver, stack, language
        self.problems: list[str] = []
        self.visited: set[str] = set()
        self.known_seen: set[tuple[str, str]] = set()

    def check(self, name: str) -> None:
        driver = self.driver
        page = f"{name} ({driver.current_url}, {self.language})"
        if driver.execute_script("return document.documentElement.lang") != self.language:
            self.problems.append(f"{page}: <html lang> is not {self.language}")
        if driver.execute_script("return document.body.innerText").strip() == "":
            self.problems.append(f"{page}: the page is empty")
        foreign = browser.foreign_references(driver)
        if foreign:
            self.problems.append(f"{page}: references other origins: {foreign}")
        self.visited.add(name)
        violations = []
        for violation in browser.axe_violations(driver):
            if (name, violation["id"]) in KNOWN:
                self.known_seen.add((name, violation["id"]))
            else:
                violations.append(violation)
        if violations:
            self.problems.append(f"{page}: {browser.describe_violations(driver, violations)}")
        if self.language == "sv" and name in SCREENSHOTS:
            browser.screenshot(driver, f"{name}-phone")
            browser.set_viewport(driver, *browser.DESKTOP)
            browser.screenshot(driver, f"{name}-desktop")
            browser.set_viewport(driver, *browser.PHONE)

    def visit(self, name: str, path: str, then: Callable[[], None] | None = None) -> None:
        self.driver.get(self.stack.url(path))
        if then is not None:
            then()
        self.check(name)

    def verdict(self) -> None:
        for key, reason in KNOWN.items():
            if key[0] in self.visited and key not in self.known_seen:
                self.problems.append(f"known violation {key} is gone ({reason}): remove it")
        assert not self.problems, "\n\n".join(self.problems)


@pytest.mark.parametrize("language", ["sv", "en"])
def test_youth_worker_pages(driver: webdriver.Chrome, web_stack: WebStack, language: str) -> None:
    sent = pages.create_via_api(
        web_stack, subject={**pages.API_BODY["subject"], "personal_number": "20121212-1212"}
    )
    draft = pages.create_via_api(web_stack, submit=False)
    browser.set_language(driver, language)
    walk = Walk(driver, web_stack, language)

    walk.visit("sign-in", pages.INTAKE)
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    walk.check("intake")
    pages.submit(driver)  # nothing filled in: the errors come back
    browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".error-summary"))
    walk.check("intake-errors")
    walk.visit("my-referrals", pages.MINE)
    walk.visit("referral", f"{pages.MINE}/{sent}")
    walk.visit("draft", f"{pages.MINE}/{draft}")
    walk.visit("edit-draft", f"{pages.MINE}/{draft}/edit")
    walk.visit("not-found", f"{pages.MINE}/{uuid.uuid4()}")
    walk.visit("search", f"{pages.MINE}/search")
    # Searched by personal number: a POST, so the number stays out of the address.
    driver.find_element(By.ID, "personal_number").send_keys("20121212-1212")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "main .cards"))
    assert "121212" not in driver.current_url  # the number 20121212-1212 (a uuid may hold "1212")
    walk.check("search-found")
    walk.verdict()


@pytest.mark.parametrize("language", ["sv", "en"])
def test_auditor_pages(driver: webdriver.Chrome, web_stack: WebStack, language: str) -> None:
    referral = pages.create_via_api(web_stack)
    browser.set_language(driver, language)
    walk = Walk(driver, web_stack, language)

    web_sign_in(driver, web_stack, "revisor", "/app/audit/")
    walk.check("audit-chain")
    walk.visit("audit-events", "/app/audit/events")
    walk.visit("audit-events-found", "/app/audit/events?action=referral:create")
    walk.visit("break-glass", "/app/audit/break-glass")
    walk.visit("access-log", f"/app/audit/referrals/{referral}")
    walk.verdict()


@pytest.mark.parametrize("language", ["sv", "en"])
def test_pages_without_a_session(
    driver: webdriver.Chrome, web_stack: WebStack, language: str
) -> None:
    browser.set_language(driver, language)
    walk = Walk(driver, web_stack, language)
    walk.visit("dev-sign-in", "/app/dev/sign-in")
    walk.visit("signed-out", "/app/signed-out")
    walk.verdict()


def test_the_error_summary_takes_the_focus(driver: webdriver.Chrome, web_stack: WebStack) -> None:
    """GOV.UK habit: after a refused form, focus is on the summary, whose links lead to
    the fields, worded as the errors beside them."""
    web_sign_in(driver, web_stack, "ung-anna", pages.INTAKE)
    pages.submit(driver)
    summary = browser.wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".error-summary")
    )[0]
    assert browser.active(driver) == summary
    assert driver.title.startswith("Fel:")
    for link in summary.find_elements(By.CSS_SELECTOR, "a[href^='#']"):
        field = link.get_attribute("href").split("#", 1)[1]
        beside = driver.find_element(By.ID, f"{field}-error").text
        assert link.text in beside, (link.text, beside)
