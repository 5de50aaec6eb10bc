"""One HTTP attempt at delivering a webhook, within a hard wall-clock deadline.

The answer is a short fixed description of what went wrong (or None): never the
receiver's response body, which could hold anything, and which is never read.

``http.client`` rather than requests: a per-socket-operation timeout lets a receiver that
drips its status line and headers a byte at a time hold a worker for as long as it likes.
Here a watchdog shuts the socket down when the attempt's time is up, whatever the
receiver is doing.  Also by construction: no redirects followed, no proxy variables
read, TLS verified against the system's trust store.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit


class WebhookSender:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tls = ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None when the receiver answered 2xx in time; otherwise why the attempt failed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "invalid endpoint"
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout
            )
        expired = threading.Event()
        watchdog = threading.Timer(self.timeout, _cut, args=(connection, expired))
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.connect()
            if expired.is_set():
                return "timeout"
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            connection.request("POST", target, body=body, headers=dict(headers))
            status = connection.getresponse().status
        except TimeoutError:
            return "timeout"
        except ssl.SSLError:
            return "timeout" if expired.is_set() else "tls failed"
        except (OSError, http.client.HTTPException):
            return "timeout" if expired.is_set() else "connection failed"
        finally:
            watchdog.cancel()
            connection.close()
        if expired.is_set():
            return "timeout"
        return None if 200 <= status < 300 else f"HTTP {status}"

    def close(self) -> None:
        """Nothing is pooled: every attempt has a connection of its own."""


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The attempt's time is up: wake whatever read or write is blocked on the socket."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
