"""The one place where text from a request is normalised or refused.

Every string a request carries passes here before any schema, service or database sees it:
the JSON body (keys and values, at any depth), the path, every query name and value, and
the headers the API reads.  What is refused cannot be stored, logged or audited safely:

- NUL and the other C0 control characters (tab, newline and carriage return excepted in
  bodies): PostgreSQL refuses NUL in text, so it would fail the audit write and answer 503;
- lone surrogates (``"\\ud800"`` is valid JSON, but no UTF-8 encoder takes it);
- integers longer than ``MAX_INTEGER_DIGITS`` (Python refuses to parse 4,301 digits, and
  no field of ours needs more than ten), ``NaN``, ``Infinity`` and floats that overflow;
- nesting deeper than ``MAX_DEPTH`` (deep enough JSON exhausts the parser's stack).

Text a body keeps is NFC-normalised, so "å" typed as "a" plus a combining ring is the same
text as "å" everywhere after this point (stored, compared, blind-indexed).  URLs and
headers carry ids, codes and cursors only: they are checked, not rewritten.
Refusals are validation problems naming the field: 422, or 400 for a body the parser
cannot read at all.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import flask_smorest
from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.datastructures import Headers

from referrals.services.errors import Unprocessable

MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 30
MAX_HEADER_LENGTH = 1_024
# Headers the API reads; the others are the HTTP stack's business.
CHECKED_HEADERS = ("Idempotency-Key", "If-Match", "X-Break-Glass-Reason")

# C0 controls and DEL.  Bodies may hold tab, newline and carriage return (a narrative has
# paragraphs); URLs and headers may not.
_BODY_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class Rejected(ValueError):
    """A value that no field may hold; ``field`` is its dotted path ("" for the body)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class _Unreadable:
    """A number the parser met that no field can hold; reported with its path."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def check_text(value: str, *, forbidden: re.Pattern[str] = _BODY_FORBIDDEN) -> str:
    """``value`` NFC-normalised, or ``Rejected`` saying what is wrong with it."""
    if _SURROGATE.search(value):
        raise Rejected("Must be valid Unicode text (a lone surrogate is not).")
    if "\x00" in value:
        raise Rejected("Must not contain NUL characters.")
    if forbidden.search(value):
        raise Rejected("Must not contain control characters.")
    return unicodedata.normalize("NFC", value)


def _integer(text: str) -> int | _Unreadable:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        return _Unreadable(f"Integer too large (at most {MAX_INTEGER_DIGITS} digits).")
    return int(text)


def _float(text: str) -> float | _Unreadable:
    value = float(text)
    return value if math.isfinite(value) else _Unreadable("Number out of range.")


def _constant(_text: str) -> _Unreadable:
    return _Unreadable("Not a JSON number (NaN and Infinity are not JSON).")


def parse_body(raw: str | bytes) -> Any:
    """The JSON document in ``raw``, cleaned; ``json.JSONDecodeError`` if it is not JSON,
    ``Rejected`` (with ``.field``) if it holds something no field may hold."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("not UTF-8", "?", exc.start) from None
    try:
        document = json.loads(
            text, parse_int=_integer, parse_float=_float, parse_constant=_constant
        )
    except RecursionError:
        raise Rejected(f"Nested more than {MAX_DEPTH} levels deep.") from None
    return _clean(document)


def _clean(document: Any) -> Any:
    """Walks the document without recursion (its depth is the attacker's to choose)."""
    root: list[Any] = [document]
    stack: list[tuple[Any, Any, str, int]] = [(root, 0, "", 0)]
    while stack:
        parent, key, path, depth = stack.pop()
        value = parent[key]
        if depth > MAX_DEPTH:
            raise Rejected(f"Nested more than {MAX_DEPTH} levels deep.", path)
        if isinstance(value, str):
            parent[key] = _checked(value, path)
        elif isinstance(value, _Unreadable):
            raise Rejected(value.reason, path)
        elif isinstance(value, dict):
            cleaned = {_checked(name, _join(path, name)): item for name, item in value.items()}
            parent[key] = cleaned
            stack.extend((cleaned, name, _join(path, name), depth + 1) for name in cleaned)
        elif isinstance(value, list):
            stack.extend((value, i, _join(path, str(i)), depth + 1) for i in range(len(value)))
    return root[0]


def _checked(value: str, field: str) -> str:
    try:
        return check_text(value)
    except Rejected as exc:
        raise Rejected(exc.message, field) from None


def _join(path: str, name: str) -> str:
    # A name that is itself unprintable is reported by its position, not echoed.
    safe = name if not (_SURROGATE.search(name) or _LINE_FORBIDDEN.search(name)) else "?"
    return f"{path}.{safe}" if path else safe


class CleanJsonParser(FlaskParser):
    """webargs' parser, reading JSON bodies through ``parse_body``."""

    def _raw_load_json(self, req: Any) -> Any:
        if not core.is_json(req.mimetype):
            return core.missing
        try:
            return parse_body(req.get_data(cache=True))
        except Rejected as exc:
            # Only a body too deep to parse has no field: it is unreadable, like bad JSON.
            status = 422 if exc.field else 400
            messages = {exc.field: [exc.message]} if exc.field else [exc.message]
            abort(status, messages={"json": messages})


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's blueprint, parsing arguments with ``CleanJsonParser``.

    A missing JSON body reads as ``{}``.  So the spec calls a body required exactly when
    ``{}`` is refused (its schema has a required field: a missing body is then a 422 naming
    that field), and optional when ``{}`` is a whole request (``accept``, a draft).
    """

    ARGUMENTS_PARSER = CleanJsonParser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        # One instance per view, made here: given a class, webargs makes a new instance
        # for every request, and with it every nested schema it holds (a create paid
        # three schema constructions per request).  Loading keeps no state in the
        # instance, so the threads of a worker can share it.
        if isinstance(schema, type):
            schema = schema()
        if location == "json":
            kwargs.setdefault("required", body_required(schema))
        return super().arguments(schema, location=location, **kwargs)


def body_required(schema: Any) -> bool:
    instance = schema() if isinstance(schema, type) else schema
    return any(field.required for field in instance.fields.values())


class CleanJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading through ``parse_body``: ``request.get_json()``
    anywhere (a hook, an extension) meets the same rules as the views' arguments."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_body(s)


# --- URL and headers -------------------------------------------------------------------------


def _url_problems() -> Iterator[tuple[str, str]]:
    yield from _line_problem("path", request.path)
    for name, values in request.args.lists():
        yield from _line_problem("query", name)
        for value in values:
            yield from _line_problem(name, value)


def _line_problem(field: str, value: str) -> Iterator[tuple[str, str]]:
    try:
        check_text(value, forbidden=_LINE_FORBIDDEN)
    except Rejected as exc:
        yield field, exc.message


def refuse_unreadable_url() -> None:
    """Before routing and before the audit: an id from the path becomes the audit event's
    target, so a NUL there would fail the audit write (503) instead of the request (4xx)."""
    for field, message in _url_problems():
        abort(400 if field == "path" else 422, messages={"query": {field: [message]}})


def check_headers(headers: Headers) -> None:
    """The headers the API reads: printable ASCII of a sane length, or 422 naming them."""
    for name in CHECKED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if len(value) > MAX_HEADER_LENGTH:
            message = f"Longer than {MAX_HEADER_LENGTH} characters."
        elif not value.isascii() or _LINE_FORBIDDEN.search(value):
            message = "Must be printable ASCII."
        else:
            continue
        raise Unprocessable(message, field=name)


def readable(value: str | None) -> bool:
    """Text a log line or an audit column can hold: no NUL, controls or lone surrogates."""
    try:
        check_text(value or "", forbidden=_LINE_FORBIDDEN)
    except Rejected:
        return False
    return True


def init_app(app: Flask) -> None:
    app.json = CleanJSONProvider(app)
    app.before_request(refuse_unreadable_url)
