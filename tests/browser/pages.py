"""What the browser tests do on the web front end's pages, said once.

Field ids are the API body's paths with ``-`` for nesting (referrals/web/forms.py); the
first option of a group of radios or checkboxes carries the group's name as its id, the
others ``<name>-<code>``.  Made-up people only; personal numbers are valid-by-checksum
test numbers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.support import browser
from tests.support.relying_party import MOUNT
from tests.support.web_stack import WebStack
from tests.support.witness import Witness

INTAKE = "/app/referrals/new"
MINE = "/app/referrals"

# What the youth worker types: text fields by id, codes by group.
TYPED = {
    "subject-name": "Kim Påhittad",
    "subject-personal_number": "20121212-1212",
    "place_met": "Sergels torg, vid trapporna",
    "narrative": "Påhittad berättelse: träffade en ung person sent på kvällen.",
}
DISTRICT = "norrmalm"  # routed to the norrmalm unit by the demo rules
CHOSEN = {"categories": "drugs", "priority": "normal", "legal_basis": "duty_to_report"}

# The API body of a referral made for the pages to show (by the sending unit's system).
API_BODY: dict[str, Any] = {
    "subject": {"name": "Alex Påhittad", "district": DISTRICT},
    "categories": ["school_absence"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "place_met": "Medborgarplatsen",
    "narrative": "Påhittad berättelse för sidorna.",
}


def watch_typed(witness: Witness) -> None:
    """What the youth worker types is personal data: the session's witness fails the run
    if any of it reaches an audit row or a log line (it learns API bodies by itself, but
    not form posts)."""
    witness.secrets.update(TYPED.values())
    witness.secrets.add("".join(c for c in TYPED["subject-personal_number"] if c.isdigit()))


def option(driver: webdriver.Chrome, name: str, code: str) -> WebElement:
    """The radio or checkbox for ``code`` in group ``name``, whichever id it has."""
    return driver.find_element(By.CSS_SELECTOR, f"input[name='{name}'][value='{code}']")


def fill_intake(driver: webdriver.Chrome) -> None:
    """Type and choose the referral of :data:`TYPED` and :data:`CHOSEN` on the intake page."""
    for field, value in TYPED.items():
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    Select(driver.find_element(By.ID, "subject-district")).select_by_value(DISTRICT)
    for name, code in CHOSEN.items():
        box = option(driver, name, code)
        if not box.is_selected():
            # Labels are the touch targets; a click on the label is what a thumb does.
            driver.find_element(By.CSS_SELECTOR, f"label[for='{box.get_attribute('id')}']").click()


def typed_values(driver: webdriver.Chrome) -> dict[str, str]:
    return {field: str(driver.find_element(By.ID, field).get_attribute("value")) for field in TYPED}


def submit(driver: webdriver.Chrome) -> None:
    driver.find_element(By.CSS_SELECTOR, "button[name=action][value=submit]").click()


def referral_id_from(driver: webdriver.Chrome, stack: WebStack) -> str:
    """The id in the address of a referral's page, once the browser is on one."""
    browser.wait_for(driver, lambda d: on_a_referral_page(d, stack))
    path = driver.current_url.removeprefix(stack.url(f"{MINE}/"))
    return str(uuid.UUID(path[:36]))


def create_via_api(stack: WebStack, *, submit: bool = True, **changes: Any) -> str:
    """A referral of the youth workers' unit made through the API by its system."""
    with stack.api("ungdomsjouren-app") as api:
        answer = api.post(
            stack.url("/api/v1/referrals"), json={**API_BODY, **changes, "submit": submit}
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def status_of(driver: webdriver.Chrome, stack: WebStack, path: str) -> int:
    """The HTTP status the browser gets for ``path`` with its own cookies, redirects not
    followed (302 for any redirect).  Asked from a page of the same origin without a
    Content-Security-Policy (the test relying party's): our pages allow no fetch."""
    driver.get(stack.url(f"{MOUNT}/language"))
    return int(
        driver.execute_async_script(
            "const done = arguments[1];"
            "fetch(arguments[0], {redirect: 'manual', credentials: 'same-origin'})"
            ".then((r) => done(r.type === 'opaqueredirect' ? 302 : r.status), () => done(-1))",
            stack.url(path),
        )
    )


def on_a_referral_page(driver: webdriver.Chrome, stack: WebStack) -> bool:
    return re.match(re.escape(stack.url(MINE)) + r"/[0-9a-f-]{36}", driver.current_url) is not None


def text(driver: webdriver.Chrome) -> str:
    return str(driver.execute_script("return document.body.innerText"))
