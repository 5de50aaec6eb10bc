"""A witness for the whole test session: every personal value and token sent to the app,
every audit row written and every log line emitted — and, at the end, proof that the
first never appear in the other two (SECURITY.md, Audit trail: no personal data, tokens
or search terms in the audit trail or the logs)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, request

from referrals.logs import JsonFormatter

# Body keys whose values are personal data or search terms.
SENSITIVE_KEYS = {
    "name",
    "personal_number",
    "phone",
    "narrative",
    "place_met",
    "text",
    "reason_text",
}
SHORTEST = 6  # shorter values ("x", "070") would match by accident
WORD = re.compile(r"\w+")


@dataclass
class Witness:
    secrets: set[str] = field(default_factory=set)
    audit_rows: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    def watch(self, app: Flask) -> None:
        app.before_request(self._collect)

    def _collect(self) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer ") and len(authorization) > 20:
            self.secrets.add(authorization[7:].strip())
        body = request.get_json(silent=True)
        self._walk(body)
        # Web forms name their fields after the body's paths: "subject-personal_number".
        for key, value in request.form.items(multi=True):
            self._walk(value, key.rsplit("-", 1)[-1])

    def _walk(self, value: Any, key: str | None = None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self._walk(v, str(k))
        elif isinstance(value, list):
            for item in value:
                self._walk(item, key)
        elif isinstance(value, str) and key in SENSITIVE_KEYS and len(value.strip()) >= SHORTEST:
            self.secrets.add(value.strip())
            digits = "".join(c for c in value if c.isdigit())
            if key == "personal_number" and len(digits) >= 10:
                self.secrets.add(digits)

    def leaks(self) -> list[str]:
        """Secrets found in any audit row or log line.

        Tens of thousands of lines and secrets: a substring search of each secret through
        everything takes minutes.  A leaked secret brings its words along, so only
        secrets whose longest word occurs as a word are searched for in full."""
        haystack = "\n".join(self.audit_rows + self.log_lines)
        words = set(WORD.findall(haystack))
        candidates = [
            secret
            for secret in self.secrets
            if max(WORD.findall(secret), key=len, default=secret) in words
        ]
        return sorted(s for s in candidates if s in haystack)


class LogCollector(logging.Handler):
    def __init__(self, witness: Witness) -> None:
        super().__init__(level=logging.DEBUG)
        self.witness = witness
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        # Re-encoded without \u escapes, so a leaked "Söder" reads as itself.
        line = json.loads(self.format(record))
        self.witness.log_lines.append(json.dumps(line, ensure_ascii=False))


def audit_row_text(params: Any) -> str:
    """The values of one audit INSERT, as text to search."""
    return json.dumps(params, default=str, ensure_ascii=False)
