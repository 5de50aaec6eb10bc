"""What the intake page weighs and how fast it loads on a slow mobile connection.

    .venv/bin/python -m tests.benchmarks.bench_pages [rounds]

The whole service runs on loopback (tests/support/web_stack.py: the real app on SQLite
with the demo units, the test OpenID Provider); Debian's Chromium signs in through the
provider's login page as the youth worker ``ung-anna`` and then loads, with its cache
off, at phone size (360x640):

  A. the intake page, ``/app/referrals/new``, as shipped: HTML, stylesheet, script;
  B. a bare form page for comparison: one label, one input, two radios and a button,
     no stylesheet, no script (``/_test-rp/accessible``, served by the same server).

Each page is loaded unthrottled and on a "slow 3G" profile, emulated by Chromium
(``Network.emulateNetworkConditions``: 400 ms latency added to every request, 400 kbit/s
down and 400 kbit/s up).  Rounds alternate the pages (ABBA...); the figures are medians.

Weight: all bytes transferred for the page, as the browser's resource timing reports them
(``transferSize``: headers and compressed bodies of the document and every subresource;
the cache is off, so nothing is free).  Load: from navigation start to the end of the
``load`` event.  The issue's budget: at most 60 KB and under 2 s on slow 3G.
Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from selenium import webdriver

from tests.benchmarks.report import say
from tests.support import browser
from tests.support.relying_party import MOUNT
from tests.support.web_stack import WebStack, running_web_stack, web_sign_in

INTAKE = "/app/referrals/new"
BARE = f"{MOUNT}/accessible"
SLOW_3G = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 50_000,
    "uploadThroughput": 50_000,
}
UNTHROTTLED = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
BUDGET_BYTES = 60 * 1024
BUDGET_SECONDS = 2.0

_MEASURE = """
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource');
const entries = [nav, ...resources];
return {
  bytes: entries.reduce((sum, e) => sum + e.transferSize, 0),
  body: entries.reduce((sum, e) => sum + e.encodedBodySize, 0),
  requests: entries.length,
  load: nav.loadEventEnd - nav.startTime,
  dcl: nav.domContentLoadedEventEnd - nav.startTime,
  names: entries.map((e) => [e.name, e.transferSize]),
  failed: entries.filter((e) => e.responseStatus !== 200).map((e) => [e.name, e.responseStatus]),
};
"""


def load(driver: webdriver.Chrome, url: str, conditions: dict[str, Any]) -> dict[str, Any]:
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
    try:
        driver.get(url)
        browser.wait_for(
            driver,
            lambda d: d.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return n && n.loadEventEnd > 0"
            ),
        )
        figures: dict[str, Any] = driver.execute_script(_MEASURE)
    finally:
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", UNTHROTTLED)
    if not driver.current_url.startswith(url):
        raise RuntimeError(f"{url} ended on {driver.current_url}")
    if figures["failed"]:
        # A failed subresource weighs little and loads fast: such a round measures nothing.
        raise RuntimeError(f"{url}: not every response was 200: {figures['failed']}")
    return figures


def main(rounds: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-pages-") as workdir,
        running_web_stack(Path(workdir)) as stack,
    ):
        driver = browser.start_chromium()
        try:
            run(driver, stack, rounds)
        finally:
            driver.quit()


def run(driver: webdriver.Chrome, stack: WebStack, rounds: int) -> None:
    web_sign_in(driver, stack, "ung-anna", INTAKE)
    pages = {"A": ("intake page", stack.url(INTAKE)), "B": ("bare form page", stack.url(BARE))}
    profiles = {"unthrottled": UNTHROTTLED, "slow 3G": SLOW_3G}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {
        (p, k): [] for p in pages for k in profiles
    }
    order = "ABBA" * ((rounds + 1) // 2)
    for profile, conditions in profiles.items():
        load(driver, pages["A"][1], conditions)  # warm-up: the server's first render
        for page in order[: 2 * rounds]:
            results[(page, profile)].append(load(driver, pages[page][1], conditions))

    say(f"Chromium {driver.capabilities.get('browserVersion')}, headless, 360x640, cache off")
    say("slow 3G = 400 ms latency per request, 400 kbit/s down, 400 kbit/s up (CDP emulation)")
    say(f"{rounds} loads per page and profile, interleaved ABBA; medians\n")
    header = f"{'page':<16} {'profile':<12} {'requests':>8} {'bytes':>9} {'KB':>7} {'load ms':>9}"
    say(header)
    say("-" * len(header))
    medians: dict[tuple[str, str], tuple[float, float]] = {}
    for (page, profile), runs in results.items():
        weight = statistics.median(r["bytes"] for r in runs)
        seconds = statistics.median(r["load"] for r in runs) / 1000
        medians[(page, profile)] = (weight, seconds)
        say(
            f"{pages[page][0]:<16} {profile:<12} {runs[0]['requests']:>8} {weight:>9.0f} "
            f"{weight / 1024:>7.1f} {seconds * 1000:>9.0f}"
        )
    say()
    say("intake page, what was transferred (first slow-3G load):")
    for name, size in results[("A", "slow 3G")][0]["names"]:
        say(f"  {size:>7} B  {name.removeprefix(stack.url(''))}")
    weight, seconds = medians[("A", "slow 3G")]
    bare_weight, bare_seconds = medians[("B", "slow 3G")]
    say()
    say(
        f"intake weight {weight / 1024:.1f} KB of a {BUDGET_BYTES // 1024} KB budget "
        f"({weight / BUDGET_BYTES:.0%}); {weight / bare_weight:.1f}x the bare form page"
    )
    say(
        f"intake load on slow 3G {seconds:.2f} s of a {BUDGET_SECONDS:.0f} s budget "
        f"({seconds / BUDGET_SECONDS:.0%}); bare form page {bare_seconds:.2f} s "
        f"(ratio {seconds / bare_seconds:.2f})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
