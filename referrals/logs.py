"""Structured logs: one JSON object per line, fields from an allow-list.

Only the fields named in ``FIELDS`` ever leave a record, so an ``extra`` carrying a body,
a token or a personal value by mistake is dropped rather than written.  Request lines
name the route template (``/api/v1/referrals/<uuid:referral_id>``), never the raw URL.
A message is its template only (never its arguments; of another library's message, which
may have values formatted in, only its constant lead) and an exception is its class name
only (never its text or traceback, which can quote a value).

The same formatter serves gunicorn (``deploy/gunicorn.conf.py``): its error lines obey
the same rules, and its access line is built from ``ACCESS_ATOMS`` alone, so the request
line, query string, Referer, user agent and user never reach it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

FIELDS = (
    "request_id",
    "proxy_request_id",
    "method",
    "route",
    "status",
    "bytes",
    "latency_ms",
    "reason",
    "path",
    "referral",
    "delivery",
    "unit",
    "claimed",
    "delivered",
    "failed",
    "dead",
    "skipped",
    "escalated",
    "pruned",
    "sealed",
    "checkpoint",
    "error",
    "retry_in",
)

# Keys of the WSGI environ through which the app tells gunicorn's access line what it
# knows: our request id, the proxy's (validated), and the route template.
ENVIRON_REQUEST_ID = "referrals.request_id"
ENVIRON_PROXY_REQUEST_ID = "referrals.proxy_request_id"
ENVIRON_ROUTE = "referrals.route"

# gunicorn's access record carries a dict of "atoms"; these are the only ones we print.
# Environ keys appear lower-cased, as gunicorn builds them.
ACCESS_ATOMS = {
    "method": "m",
    "route": f"{{{ENVIRON_ROUTE}}}e",
    "status": "s",
    "bytes": "B",
    "request_id": f"{{{ENVIRON_REQUEST_ID}}}e",
    "proxy_request_id": f"{{{ENVIRON_PROXY_REQUEST_ID}}}e",
}
ACCESS_LOGGER = "gunicorn.access"

# Libraries (gunicorn above all) often format values into a message before logging it
# ("Invalid request from ip=…: Invalid HTTP Header: '…'"): of theirs, only the constant
# lead is kept, up to the first sign of a value.
_CONSTANT_LEAD = re.compile(r"[^:='\"\[{(/\d\n]*")

# The ids of the request being served, for every line logged while it is served.
_request_ids: ContextVar[tuple[str, str | None] | None] = ContextVar(
    "referrals_request_ids", default=None
)


def bind_request(request_id: str, proxy_request_id: str | None) -> Token[Any]:
    """Stamp lines logged from now on with these ids; pass the token to ``unbind_request``."""
    return _request_ids.set((request_id, proxy_request_id))


def unbind_request(token: Token[Any]) -> None:
    _request_ids.reset(token)


def _stamping(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory that notes the request being served when a record is made (a
    handler may format it later, elsewhere: a queue, a test's capture)."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_ids = _request_ids.get()
        return record

    make.stamps_request_ids = True  # type: ignore[attr-defined]
    return make


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        ids = getattr(record, "request_ids", None)
        if ids is not None:
            line["request_id"] = ids[0]
            if ids[1] is not None:
                line["proxy_request_id"] = ids[1]
        if record.name == ACCESS_LOGGER and isinstance(record.args, Mapping):
            line["message"] = "request"
            line.update(_access_fields(record.args))
        line.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else "unknown"
        return json.dumps(line, default=str)


def _message(record: logging.LogRecord) -> str:
    if not isinstance(record.msg, str):  # an exception object: its text could be anything
        return type(record.msg).__name__
    if record.name == "referrals" or record.name.startswith("referrals."):
        # Our own messages are templates: the arguments, which could carry anything, are
        # never merged in.
        return record.msg
    match = _CONSTANT_LEAD.match(record.msg)
    return match.group().strip() if match else ""


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, atom in ACCESS_ATOMS.items():
        value = atoms.get(atom)
        if value is None or value == "-":
            continue
        fields[name] = int(value) if name == "status" and str(value).isdigit() else value
    duration = atoms.get("D")  # microseconds
    if isinstance(duration, int):
        fields["latency_ms"] = round(duration / 1000, 2)
    return fields


def configure(level: str) -> None:
    """Install the JSON handler on the package logger, and the stamping of request ids
    on every record, once per process."""
    if not getattr(logging.getLogRecordFactory(), "stamps_request_ids", False):
        logging.setLogRecordFactory(_stamping(logging.getLogRecordFactory()))
    logger = logging.getLogger("referrals")
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
