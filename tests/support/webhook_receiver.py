"""A real HTTP endpoint on loopback for webhook-delivery tests.

Delivery code has to be tested against a real socket, not a mocked HTTP library: status
handling, client timeouts and dropped connections all happen in the network stack.  The
receiver records every request and answers from a script, so a test can say "fail with
500, then succeed" or "hang past the sender's timeout" and then inspect what arrived.

    with WebhookReceiver() as rx:
        rx.respond_with(500, 200)
        deliver(rx.url())
        first, second = rx.wait_for(2)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Received:
    """One request as it arrived; header names lower-cased, repeated headers comma-joined."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` before answering ``status``: provokes the sender's timeout."""

    seconds: float
    status: int = 200


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending any response."""


Answer = int | Slow | Drop

# Errors that only mean the client went away (e.g. after its own timeout) or fell silent.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close so no request outlives the test that made it.
    daemon_threads = False
    block_on_close = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep stderr clean; unexpected handler errors are kept for ``__exit__`` to raise."""
        self.receiver._handler_failed(sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Bounds how long a silent client can hold a handler thread (and so ``__exit__``).
    timeout = 5

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Serve every method: the base class looks up ``do_<METHOD>``."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        receiver = self.server.receiver
        answer = receiver._record(self.command, self.path, headers, body)
        if isinstance(answer, Drop):
            self.close_connection = True
            return
        if isinstance(answer, Slow):
            receiver._closing.wait(answer.seconds)
            answer = answer.status
        self.send_response(answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def handle(self) -> None:
        with contextlib.suppress(*_CLIENT_GONE):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookReceiver:
    """Loopback HTTP server that records requests and answers from a FIFO script.

    Answers are taken one per request, in arrival order; with nothing scripted it answers
    200 with an empty body.  A path given to ``respond_with`` gets its own queue, which
    alone serves that path (200 once exhausted); other paths use the default queue.
    """

    def __init__(self) -> None:
        self.on_request: Callable[[], object] | None = None
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._received: list[Received] = []
        self._scripts: dict[str | None, deque[Answer]] = {None: deque()}
        self._failures: list[BaseException | None] = []
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebhookReceiver:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._closing.set()  # cut any Slow answer short so shutdown is prompt
        server.shutdown()
        server.server_close()  # also joins the handler threads
        thread.join()
        self._server = self._thread = None
        if self._failures and exc_type is None:
            raise AssertionError(
                f"webhook receiver handler failed {len(self._failures)} time(s)"
            ) from self._failures[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("WebhookReceiver is not running; use it as a context manager")
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond_with(self, *answers: Answer, path: str | None = None) -> None:
        """Append answers to the script for ``path`` (no query string; None: the default)."""
        for answer in answers:
            if not isinstance(answer, int | Slow | Drop) or isinstance(answer, bool):
                raise TypeError(f"not a scripted answer: {answer!r}")
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(answers)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` requests arrived; fail the test if they do not."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                arrived = [f"{r.method} {r.path}" for r in self._received]
                raise AssertionError(
                    f"expected at least {count} request(s) within {timeout}s, "
                    f"{len(arrived)} arrived: {arrived}"
                )
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Record and pick the answer under one lock, so answers follow arrival order; then
        run ``on_request`` (if set) before answering: something that happens while the
        sender waits for its answer."""
        with self._arrived:
            self._received.append(Received(method, path, headers, body, time.monotonic()))
            self._arrived.notify_all()
            script = self._scripts.get(urlsplit(path).path, self._scripts[None])
            answer = script.popleft() if script else 200
        if self.on_request is not None:
            self.on_request()
        return answer

    def _handler_failed(self, error: BaseException | None) -> None:
        with self._lock:
            self._failures.append(error)
