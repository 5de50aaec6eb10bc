"""The real app served over HTTP on loopback, in a thread, for the browser tests.

The listening socket is bound before anything else exists so that its port is known when
the test OpenID Provider registers the web client's redirect URIs; werkzeug then serves
on that very socket (``fd=``), so there is no window in which another process could take
the port.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

from werkzeug.serving import BaseWSGIServer, make_server

HOST = "127.0.0.1"


class LiveServer:
    """Bind with :meth:`bind`, learn :attr:`origin`, then :meth:`serve` a WSGI app."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.port: int = sock.getsockname()[1]
        self.origin = f"http://{HOST}:{self.port}"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def bind(cls) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        sock.listen(64)
        sock.set_inheritable(True)
        return cls(sock)

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def serve(self, app: object) -> None:
        """Serve ``app`` (any WSGI callable) from a daemon thread, one thread per request."""
        self._server = make_server(
            HOST,
            self.port,
            app,
            threaded=True,
            fd=self.socket.fileno(),  # type: ignore[arg-type]
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"live-server-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
