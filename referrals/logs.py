"""Structured logs: one JSON object per line, fields from an allow-list.

Only the fields named in ``FIELDS`` ever leave a record, so an ``extra`` carrying a body,
a token or a personal value by mistake is dropped rather than written.  Request lines
name the route template (``/api/v1/referrals/<uuid:referral_id>``), never the raw URL.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            # The message template only: arguments could carry anything.
            "message": str(record.msg),
        }
        line.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else "unknown"
        return json.dumps(line, default=str)


def configure(level: str) -> None:
    """Install the JSON handler on the package logger, once per process."""
    logger = logging.getLogger("referrals")
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
