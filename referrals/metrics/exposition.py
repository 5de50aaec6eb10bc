"""What a scrape reads, and the small HTTP server of the worker and the sealer.

The app's ``/metrics`` (``referrals.api.metrics``) renders ``registry_for_app``: its own
families (in gunicorn's multiprocess mode, every worker process's, read back from
``PROMETHEUS_MULTIPROC_DIR``) and the database gauges, computed now.  The worker and the
sealer have no web server of their own: ``serve`` starts prometheus_client's WSGI app on
a port of theirs, loopback by default, behind the same bearer token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from referrals.metrics import access
from referrals.metrics.families import Metrics


class _Delegate(Collector):
    """Another registry's families, as one collector of this one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()


def registry_for_app(
    metrics: Metrics, database: Collector, multiprocess_dir: Path | None
) -> CollectorRegistry:
    """The families ``/metrics`` renders: the process's (or every gunicorn worker's) and
    the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Delegate(metrics.registry))
    registry.register(database)
    return registry


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guarded(app: WSGIApp, token: str | None, on_refusal: Callable[[str], None]) -> WSGIApp:
    """``app`` behind the bearer token; without a configured token, open (loopback)."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token is not None:
            refusal = access.check(token, environ.get("HTTP_AUTHORIZATION"))
            if refusal is not None:
                on_refusal(refusal.value)
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", access.CHALLENGE)],
                )
                return [b"unauthorized\n"]
        return app(environ, start_response)

    return wrapper


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    # wsgiref prints a plain-text line per request to stderr; every line the processes
    # print is JSON from the allow-list (referrals.logs), and a scrape is no news.
    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(
    metrics: Metrics, host: str, port: int, token: str | None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve the process's metrics on ``host:port`` from a daemon thread; returns the
    server (its ``server_port`` is the bound port when ``port`` is 0) and the thread."""
    guard = metrics.guard()
    app = guarded(make_wsgi_app(metrics.registry), token, guard.refused)
    server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
