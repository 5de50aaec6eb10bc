"""Swedish first, English too: catalogues complete and compiled, labels in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from referrals.domain import labels
from referrals.web import i18n
from tests.web.helpers import APP, MINE, NEW, sign_in, text

WEB = Path(i18n.__file__).parent
CATALOGUE = WEB / "translations" / "sv" / "LC_MESSAGES"


def _source_messages() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(WEB, method_map):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_text_has_a_swedish_translation_and_the_compiled_catalogue_is_current() -> None:
    with (CATALOGUE / "messages.po").open("rb") as handle:
        po = read_po(handle)
    with (CATALOGUE / "messages.mo").open("rb") as handle:
        mo = read_mo(handle)
    translated = {m.id: m.string for m in po if m.id}
    missing = sorted(m for m in _source_messages() if not translated.get(m))
    assert missing == [], "texts without Swedish (see referrals/web/i18n.py)"
    compiled = {m.id: m.string for m in mo if m.id}
    assert compiled == translated, "messages.mo is stale: pybabel compile"


def test_every_code_has_a_label_in_both_languages() -> None:
    for vocabulary, known in labels.catalogue().items():
        for code in vocabulary:
            sv, en = known[code.value]
            assert sv, (vocabulary, code)
            assert en, (vocabulary, code)


def test_swedish_is_the_default_and_english_follows_the_browser(client: FlaskClient) -> None:
    sign_in(client)
    assert '<html lang="sv">' in text(client.get(NEW))
    english = text(client.get(NEW, headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert '<html lang="en">' in english
    assert "Send the referral" in english


def test_the_language_switch_is_a_cookie_holding_only_the_code(client: FlaskClient) -> None:
    sign_in(client)
    response = client.get(f"{APP}/language", query_string={"lang": "en", "next": MINE})
    assert response.headers["Location"] == MINE
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=en;")
    assert "My referrals" in text(client.get(MINE, headers={"Accept-Language": "sv"}))


def test_dates_are_shown_in_stockholm_time_as_each_language_writes_them(app: Flask) -> None:
    moment = datetime(2026, 12, 1, 22, 10, tzinfo=UTC)
    with app.test_request_context("/app/", headers={"Accept-Language": "sv"}):
        assert i18n.when(moment) == "1 december 2026 kl. 23.10"
    with app.test_request_context("/app/", headers={"Accept-Language": "en"}):
        assert i18n.when(moment) == "1 December 2026, 23:10"
