"""One HTTP attempt at delivering a webhook, within a hard wall-clock deadline.

The answer is a short fixed description of what went wrong (or None): never the
receiver's response body, which could hold anything, and which is never read.

``http.client`` rather than requests: a per-socket-operation timeout lets a receiver that
drips its status line and headers a byte at a time hold a worker for as long as it likes.
Here a watchdog shuts the socket down when the attempt's time is up, whatever the
receiver is doing.  Also by construction: no redirects followed, no proxy variables
read, TLS verified against the system's trust store.

The host is resolved once, every address it resolves to is checked against the
destination rule (referrals/webhooks/destinations.py), and the socket connects to the
checked address itself; TLS still verifies the certificate for, and sends SNI and Host
with, the name in the URL.  A message that cannot be sent for any reason is a failed
attempt with a short reason: this never raises.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from referrals.webhooks.destinations import REFUSED, Destinations, url_problem


class RefusedDestination(Exception):
    """The host resolves to an address the destination rule refuses; nothing was sent."""


class WebhookSender:
    def __init__(self, timeout: float, destinations: Destinations | None = None) -> None:
        self.timeout = timeout
        self.destinations = destinations or Destinations()
        self._tls = ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None when the receiver answered 2xx in time; otherwise why the attempt failed."""
        try:
            return self._post(url, body, headers)
        except Exception:  # one message's failure must stay its own
            return "delivery failed"

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        if url_problem(url) is not None:
            return "invalid endpoint"
        parts = urlsplit(url)
        # The port always explicit: http.client would read the last group of a bare IPv6
        # address as one.
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = _CheckedHTTPSConnection(
                host, port, timeout=self.timeout, tls=self._tls, destinations=self.destinations
            )
        else:
            connection = _CheckedHTTPConnection(
                host, port, timeout=self.timeout, destinations=self.destinations
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
        except RefusedDestination:
            return REFUSED
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


def open_checked(host: str, port: int, timeout: float, destinations: Destinations) -> socket.socket:
    """A TCP connection to ``host``: resolved once, every address checked, and connected to
    a checked address (never resolved again), so what was checked is what is reached.

    A name with any refused address is refused as a whole: a mix of public and internal
    records is no endpoint an operator meant to register."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not found or not all(destinations.permits(str(info[4][0])) for info in found):
        raise RefusedDestination
    failure: OSError = OSError("no address")
    for family, kind, proto, _name, address in found:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise failure


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, timeout: float, destinations: Destinations) -> None:
        super().__init__(host, port, timeout=timeout)
        self._destinations = destinations
        self._seconds = timeout

    def connect(self) -> None:
        self.sock = open_checked(self.host, self.port, self._seconds, self._destinations)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext,
        destinations: Destinations,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._destinations = destinations
        self._seconds = timeout
        self._tls = tls

    def connect(self) -> None:
        sock = open_checked(self.host, self.port, self._seconds, self._destinations)
        # The certificate is verified for, and SNI names, the host in the URL.
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The attempt's time is up: wake whatever read or write is blocked on the socket."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
