"""Languages of the pages: Swedish first, English too.

The language is the ``lang`` cookie when the person chose one (it holds the code and
nothing else), otherwise the browser's Accept-Language, otherwise Swedish.  Dates are
shown in Stockholm time, written the way each language writes them.

Messages are English in the code and Swedish in translations/sv (the .po and its
compiled .mo are both committed, so an install needs no build step).  After changing a
text::

    pybabel extract -F referrals/web/babel.cfg --no-location --sort-output \
        -o /tmp/messages.pot referrals/web
    pybabel update -i /tmp/messages.pot -d referrals/web/translations --no-fuzzy-matching
    (translate the new entries)
    pybabel compile -d referrals/web/translations

tests/web/test_i18n.py fails when a text has no Swedish or the .mo is stale.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from flask import Flask, request
from flask_babel import Babel, format_datetime, get_locale

from referrals.domain import labels

LANGUAGES = labels.LANGUAGES
DEFAULT = "sv"
COOKIE = "lang"
TIMEZONE = "Europe/Stockholm"
# "1 december 2026 kl. 23.10" (klarspråk) and "1 December 2026, 23:10".
_DATETIME = {"sv": "d MMMM y 'kl.' HH.mm", "en": "d MMMM y, HH:mm"}
_DATE = {"sv": "d MMMM y", "en": "d MMMM y"}


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT


def language() -> str:
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return str(format_datetime(value, _DATETIME[language()]))


def day(value: datetime | None) -> str:
    if value is None:
        return ""
    return str(format_datetime(value, _DATE[language()]))


def code_label(code: str | None, vocabulary: type[StrEnum]) -> str:
    return labels.label(code, vocabulary, language())


def init_app(app: Flask) -> None:
    app.config.update(
        BABEL_DEFAULT_LOCALE=DEFAULT,
        BABEL_DEFAULT_TIMEZONE=TIMEZONE,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
    )
    Babel(app, locale_selector=select_locale)
