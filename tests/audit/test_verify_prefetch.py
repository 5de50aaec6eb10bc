"""The verifier's prefetching thread: batches in order, errors raised to the caller in
their place, and a verification that stops early leaves no thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from referrals.audit import sealing


def test_batches_arrive_in_order() -> None:
    fetched = sealing._Prefetch(iter(range(50)), depth=2)
    try:
        assert list(fetched) == list(range(50))
    finally:
        fetched.close()


def test_an_error_while_fetching_is_raised_after_the_batches_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("the database went away")

    fetched = sealing._Prefetch(failing())
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="went away"):
        seen.extend(fetched)  # appends each batch as it comes
    fetched.close()
    assert seen == [1, 2]


def test_stopping_early_ends_the_thread_and_fetches_no_further() -> None:
    taken = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            taken.append(n)
            yield n
            n += 1

    fetched = sealing._Prefetch(endless(), depth=2)
    for item in fetched:
        if item == 3:
            break
    fetched.close()
    assert not any(t.name == "verify-prefetch" for t in threading.enumerate())
    assert len(taken) <= 4 + 2 + 1  # what was consumed, the queue's depth, one in hand
