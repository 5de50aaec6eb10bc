"""Debian's Chromium driven through its own chromedriver (Selenium), and page checks.

Nothing is downloaded: the browser and the driver are the system packages
(``apt-get install chromium chromium-driver``, which ``.ci/run`` does when they are
missing), given to Selenium by path so that Selenium Manager has nothing to look up.
Without them the browser tests are skipped locally and fail under ``CI=true``.

The browser can resolve no name but ``127.0.0.1``/``localhost``: every other host is
mapped to "not found", so a page that needs another origin (a CDN, a web font) shows it
by breaking, the way it would on a closed network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path(os.environ.get("REFERRALS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("REFERRALS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
AXE_JS = Path(__file__).resolve().parent.parent / "idp" / "node_modules" / "axe-core" / "axe.min.js"

PHONE = (360, 640)
DESKTOP = (1280, 800)
WAIT = 10.0
# The WCAG 2.1 A and AA rules (lag 2018:1937 points to EN 301 549, which is WCAG 2.1 AA).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def require_browser() -> None:
    """Skip without Chromium and its driver, or fail under ``CI=true``: CI must run them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    message = (
        f"browser tests need {' and '.join(missing)}: "
        "apt-get install chromium chromium-driver (.ci/run does)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def start_chromium(language: str = "sv") -> webdriver.Chrome:
    """A headless Chromium at phone size that sends ``Accept-Language: <language>``."""
    require_browser()
    if not AXE_JS.is_file():
        raise RuntimeError(f"axe-core is not installed ({AXE_JS}): run `npm ci --prefix tests/idp`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        f"--lang={language}",
        # Loopback only: see the module docstring.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    # Browser logs let a test read what the page printed to the console (CSP reports).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    set_viewport(driver, *PHONE)
    return driver


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """The page's layout viewport, exactly: a phone is a touch device of that CSS size."""
    phone = width < 600
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if phone else 1, "mobile": phone},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": phone})


def viewport(driver: webdriver.Chrome) -> tuple[int, int]:
    size = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    return int(size[0]), int(size[1])


def set_language(driver: webdriver.Chrome, language: str) -> None:
    """What the browser asks for in ``Accept-Language`` from now on."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": language}}
    )


def wait_for(
    driver: webdriver.Chrome, condition: Callable[[Any], Any], timeout: float = WAIT
) -> Any:
    """Wait for ``condition``; on time-out say where the browser is and what it shows."""
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        raise AssertionError(
            f"timed out after {timeout} s on {driver.current_url}\n--- page text ---\n"
            f"{str(text)[:2000]}"
        ) from None


def wait_for_url(driver: webdriver.Chrome, prefix: str, timeout: float = WAIT) -> str:
    wait_for(driver, lambda d: d.current_url.startswith(prefix), timeout)
    return str(driver.current_url)


# --- accessibility --------------------------------------------------------------------


class AxeViolations(AssertionError):
    """axe-core found violations; the message lists each rule with its targets."""


def axe_violations(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Run axe-core on the current page, injected through the driver (a ``<script>``
    element would be refused by the page's Content-Security-Policy; this is not)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        window.axe
          .run(document, {
            runOnly: {type: 'tag', values: arguments[0]},
            resultTypes: ['violations'],
          })
          .then((r) => done(r.violations), (e) => done({error: String(e)}));
        """,
        AXE_TAGS,
    )
    if isinstance(result, dict):
        raise RuntimeError(f"axe-core failed on {driver.current_url}: {result['error']}")
    return list(result)


def assert_accessible(driver: webdriver.Chrome) -> None:
    """No WCAG 2.1 A/AA violation on the current page, or each listed by rule and target."""
    violations = axe_violations(driver)
    if violations:
        raise AxeViolations(describe_violations(driver, violations))


def describe_violations(driver: webdriver.Chrome, violations: list[dict[str, Any]]) -> str:
    """Each violated rule with its impact and the CSS selectors of the elements at fault."""
    lines = [f"axe-core: {len(violations)} violation(s) on {driver.current_url}"]
    for violation in violations:
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(f"    {target}" for target in targets)
    return "\n".join(lines)


# --- origins --------------------------------------------------------------------------

_REFERENCES = """
const links = arguments[0];
const urls = performance.getEntriesByType('resource').map((e) => e.name);
urls.push(...performance.getEntriesByType('navigation').map((e) => e.name));
const absolute = (value, base) => new URL(value, base || document.baseURI).href;
const attributes = ['src', 'href', 'action', 'poster', 'data'];
for (const el of document.querySelectorAll('[src], [href], [action], [srcset], [poster], [data]')) {
  if (!links && el.matches('a[href], area[href]')) continue;
  for (const name of attributes) {
    const value = el.getAttribute(name);
    if (value) urls.push(absolute(value));
  }
  const srcset = el.getAttribute('srcset');
  if (srcset) {
    for (const part of srcset.split(',')) urls.push(absolute(part.trim().split(' ')[0]));
  }
}
for (const sheet of document.styleSheets) {
  let rules = [];
  try {
    rules = sheet.cssRules;
  } catch (e) {
    urls.push(sheet.href || 'about:unreadable-stylesheet');
  }
  for (const rule of rules) {
    for (const m of rule.cssText.matchAll(/url\\(["']?([^"')]+)["']?\\)/g)) {
      urls.push(absolute(m[1], sheet.href));
    }
    if (rule.href) urls.push(absolute(rule.href, sheet.href));
  }
}
return urls;
"""


def foreign_references(driver: webdriver.Chrome, *, links: bool = True) -> list[str]:
    """Every URL the current page loaded or points at whose origin is not the page's own.

    Fetched resources come from the browser's resource timing; references not (yet)
    fetched from the DOM's src/href/action/srcset attributes and the stylesheets' url()
    and @import rules.  ``mailto:``/``tel:`` links and fragments are not origins.
    ``links=False`` leaves out hyperlinks (``<a href>``), which load nothing by themselves.
    """
    page = urlsplit(driver.current_url)
    own = (page.scheme, page.netloc)
    foreign = []
    for url in driver.execute_script(_REFERENCES, links):
        parts = urlsplit(url)
        if parts.scheme in ("mailto", "tel", "data", "blob"):
            continue
        if (parts.scheme, parts.netloc) != own:
            foreign.append(url)
    return sorted(set(foreign))


# --- keyboard -------------------------------------------------------------------------


def active(driver: webdriver.Chrome) -> WebElement:
    return driver.switch_to.active_element


def press(driver: webdriver.Chrome, *keys: str) -> None:
    """Keys sent to whatever has focus, as a person's keyboard would (no element clicks)."""
    actions = ActionChains(driver)
    for key in keys:
        actions.send_keys(key)
    actions.perform()


def tab_to(
    driver: webdriver.Chrome, matches: Callable[[WebElement], bool], limit: int = 80
) -> WebElement:
    """Press Tab until the focused element ``matches``; fail if it is not reachable."""
    for _ in range(limit):
        press(driver, Keys.TAB)
        element = active(driver)
        if matches(element):
            return element
    raise AssertionError(f"not reachable with Tab within {limit} presses on {driver.current_url}")


def named(name: str) -> Callable[[WebElement], bool]:
    """Matches a form control by its ``name``: for a group of radios, any of its options."""
    return lambda element: element.get_attribute("name") == name


def with_value(name: str, value: str) -> Callable[[WebElement], bool]:
    """Matches one option of a group: a checkbox, or a button with a ``value``."""
    return lambda e: e.get_attribute("name") == name and e.get_attribute("value") == value


SCREENSHOTS = Path(__file__).resolve().parent.parent / "browser" / "screenshots"


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """Save what the browser shows as tests/browser/screenshots/<name>.png, for the README,
    only when ``REFERRALS_SCREENSHOTS=1`` (a normal run leaves the tree as it was)."""
    if os.environ.get("REFERRALS_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
