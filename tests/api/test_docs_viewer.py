"""``/docs`` works offline: Swagger UI from the installed package, under a CSP that
allows nothing from another origin.

The static tests parse the page and every file it loads; the browser test renders the
page in headless Chromium with name resolution cut off (skipped where Chromium is not
installed) and fails on any Content-Security-Policy violation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from referrals.api.viewer import bundle_version
from referrals.app import create_app
from referrals.config import Settings

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@pytest.fixture
def docs_app(tmp_path: Path) -> Flask:
    # /docs touches no database: an app of its own, no schema, no audit trail to witness.
    return create_app(Settings(instance_path=tmp_path / "instance"))


@pytest.fixture
def docs_client(docs_app: Flask) -> FlaskClient:
    return docs_app.test_client()


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [v for k, v in attrs if k in {"src", "href", "action"} and v is not None]
        if "style" in found or tag == "style" or any(k.startswith("on") for k in found):
            self.inline.append(tag)
        self._in_script = tag == "script"
        if tag == "script" and not found.get("src"):
            self.inline.append("script")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _page(client: FlaskClient) -> Page:
    with client.get("/docs") as response:
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == CSP
        page = Page()
        page.feed(response.get_data(as_text=True))
    return page


def test_the_page_and_every_file_it_loads_come_from_this_origin(
    docs_client: FlaskClient,
) -> None:
    page = _page(docs_client)
    assert page.inline == [], "inline scripts or styles would need 'unsafe-inline'"
    assert len(page.links) == 4  # stylesheet, icon, bundle, start-up script
    for link in page.links:
        assert link.startswith("/docs/"), link  # a path on this origin, not "//host"
        with docs_client.get(link) as response:
            body = response.get_data(as_text=not link.endswith(".png"))
        assert response.status_code == 200, link
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if link.endswith(".css"):
            # Images the stylesheet uses are embedded (data:), none fetched from elsewhere.
            urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", str(body))
            assert urls
            assert all(u.startswith("data:") for u in urls), {u[:40] for u in urls}
        if link.endswith("init.js"):
            script = str(body)
            assert "://" not in script
            assert "validatorUrl: null" in script  # no badge from the public validator
            assert "queryConfigEnabled: false" in script


def test_files_are_served_under_the_bundles_version_only(docs_client: FlaskClient) -> None:
    version = bundle_version()
    assert re.fullmatch(r"5\.\d+\.\d+", version)  # Swagger UI 5 renders OpenAPI 3.1
    assert f"/docs/{version}/swagger-ui-bundle.js" in _page(docs_client).links
    for path in (
        "/docs/0.0.1/swagger-ui-bundle.js",  # an old page's URL
        f"/docs/{version}/index.html",  # in the package, not served
        f"/docs/{version}/swagger-ui-standalone-preset.js",
        f"/docs/{version}/..%2FVERSION",
        f"/docs/{version}/../../flask_swagger_ui.py",
    ):
        with docs_client.get(path) as response:
            assert response.status_code == 404, path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def served(docs_app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, docs_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
def test_the_page_renders_offline_without_a_policy_violation(served: str) -> None:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests run as root in CI containers
            "--disable-gpu",
            # The network cut: no name resolves, so only the loopback address answers.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{served}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Content Security Policy" in line], console
    # Rendered: the spec was fetched from this origin and its operations are listed.
    assert "opblock-tag" in result.stdout, result.stderr[-2000:]
    assert "/api/v1/referrals" in result.stdout
