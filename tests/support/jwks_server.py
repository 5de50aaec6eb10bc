"""A tiny OpenID discovery + JWKS server on loopback whose answers a test can change.

It stands in for an identity provider's *publishing* side only (discovery and JWKS),
to exercise caching, outages and scheme checks; token issuance is tested against the
real provider in tests/support/idp.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class JwksServer:
    issuer: str
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    jwks_uri: str | None = None
    status: int = 200
    requests: list[str] = field(default_factory=list)


@contextmanager
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer(issuer="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if state.status != 200:
                body: dict[str, Any] = {"error": "unavailable"}
            elif self.path == "/.well-known/openid-configuration":
                body = {
                    "issuer": state.issuer,
                    "jwks_uri": state.jwks_uri or f"{state.issuer}/jwks",
                }
            elif self.path == "/jwks":
                body = state.jwks
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
