"""The statements an engine sends, watched for tests that hold which ones and how many."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event

T = TypeVar("T")


def _text(_connection: Connection, statement: str) -> Any:
    return statement


@contextmanager
def sent_statements(
    engine: Engine, describe: Callable[[Connection, str], T] = _text
) -> Iterator[list[T]]:
    """Each statement ``engine`` sends in the block, as ``describe`` tells it (by default
    its SQL text).  Listeners run in the order they were added: the engine's own (which
    begins a transaction before a write) have run when this one looks."""
    sent: list[T] = []

    def seen(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(describe(connection, statement))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
