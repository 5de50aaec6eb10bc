"""gunicorn settings for referrals: ``gunicorn -c deploy/gunicorn.conf.py``.

gunicorn executes this file; every module-level name it knows becomes a setting
(names it does not know are ignored, so newer settings are harmless on older
versions).  The application reads its own settings from ``REFERRALS_*``; this file
only reads ``PORT``, ``WEB_CONCURRENCY``, ``GUNICORN_THREADS``, ``GUNICORN_TIMEOUT``,
``REFERRALS_LOG_LEVEL`` and ``PROMETHEUS_MULTIPROC_DIR`` (which it sets when unset, see
*metrics* below).
"""

import os
import shutil
import tempfile
from pathlib import Path


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw)  # a typo should stop the start-up, not be guessed around
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number")
    return value


def _cpus() -> int:
    # CPUs this process may run on (a container's cpuset), not all of the host's.
    # A CFS quota (Kubernetes "limits.cpu") is not visible here: set WEB_CONCURRENCY.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- metrics ---------------------------------------------------------------------
# Each worker process counts its own requests; prometheus_client's multiprocess mode
# writes every worker's values to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds
# them up, so a scrape answered by any worker sees them all.  The variable must be set
# before prometheus_client is first imported (it decides the mode then), hence here, at
# the top, in the master, before any worker is forked.  Unset, a private (0700) folder
# on tmpfs is made; set it yourself to a per-instance emptyDir or tmpfs, never a folder
# shared by two instances.
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
_SHM = "/dev/shm"  # noqa: S108
_MADE_HERE = not os.environ.get(_MULTIPROC, "").strip()
if _MADE_HERE:
    os.environ[_MULTIPROC] = tempfile.mkdtemp(
        prefix="referrals-metrics-", dir=_SHM if os.path.isdir(_SHM) else None
    )

from prometheus_client import multiprocess  # noqa: E402  (after the variable, see above)


def on_starting(_server: object) -> None:
    # Files of an earlier run of the same folder would be counted again: start empty.
    directory = Path(os.environ[_MULTIPROC])
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def on_exit(_server: object) -> None:
    # A folder made above is this run's alone: leave no files behind on tmpfs.
    if _MADE_HERE:
        shutil.rmtree(os.environ[_MULTIPROC], ignore_errors=True)


def child_exit(_server: object, worker: object) -> None:
    # A worker that exited (recycled after max_requests, or killed) leaves its counters,
    # which stay in the sums; its live gauges are dropped.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


# --- the application -------------------------------------------------------------
wsgi_app = "referrals:create_app()"
# Each worker builds its own app (engine, JWKS cache).  Not preloading keeps database
# connections from being shared across fork().
preload_app = False

# --- socket ----------------------------------------------------------------------
# Inside a container the port must be reachable from outside the network namespace;
# TLS is terminated by the proxy in front, never here.
bind = [f"0.0.0.0:{_positive_int('PORT', 8000)}"]

# TLS-terminating proxy: gunicorn trusts X-Forwarded-Proto (and friends) only from
# the addresses in forwarded_allow_ips (default: 127.0.0.1 and ::1).  The app never
# builds absolute URLs from the request, so the default is safe; if a future feature
# does, list the proxy's address or network here (CIDR works from gunicorn 22),
# never "*": then any client could claim its plain-HTTP request arrived over TLS.
# forwarded_allow_ips = "10.0.0.0/8"

# --- processes -------------------------------------------------------------------
# Threads, not only processes: every request, a read included, commits its audit event
# durably before it answers, and a sync worker sits idle through each of those WAL
# flushes.  With threads, requests overlap their commits, and PostgreSQL flushes the WAL
# of all commits waiting at that moment at once (group commit): no answer leaves before
# its own audit row is durable, yet the flush is shared.  Threads pay where requests
# mostly wait: a database on another host, a disk whose flush takes milliseconds.  On a
# 2-core machine that also runs PostgreSQL and the load generator, sync workers measured
# higher (README "Performance", tests/benchmarks/bench_naive.py: eight threads hand the
# GIL over at every syscall); measure on your hardware.  The app is thread-safe (one
# SQLAlchemy session per request, locked caches); each thread holds at most one pooled
# connection, so workers x threads must stay below PostgreSQL's max_connections.
workers = _positive_int("WEB_CONCURRENCY", min(_cpus() + 1, 8))
worker_class = "gthread"
threads = _positive_int("GUNICORN_THREADS", 8)
# Heartbeat files on tmpfs: a container's overlay filesystem can stall the heartbeat.
# gunicorn makes them with mkstemp (private, unguessable names), so a shared
# directory is fine here.
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
# Recycle workers now and then so that no process lives (and grows) forever; the
# jitter keeps them from restarting all at once.
max_requests = 2000
max_requests_jitter = 200
# No runtime control socket (gunicorn >= 25.1): nothing in a container needs it.
control_socket_disable = True

# --- timeouts --------------------------------------------------------------------
# Above the identity provider's HTTP timeout (REFERRALS_OIDC_HTTP_TIMEOUT, 5 s) plus a
# database round trip; a request slower than this is a fault, not a workload.
timeout = _positive_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
keepalive = 5

# --- request limits --------------------------------------------------------------
# The app refuses an Authorization header above 8 KiB and a body above 256 KiB;
# these stop oversized request lines and headers before Python parses them.
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 100

# --- logging ---------------------------------------------------------------------
# Every line on stdout/stderr is one JSON object from referrals.logs.JsonFormatter, with
# its allow-list: gunicorn's own lines, the access line and the application's records
# alike.  A message is its template (never its arguments, which can hold a URL with its
# query string), an exception is its class name (never its text or traceback).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("REFERRALS_LOG_LEVEL", "info").lower()
# The formatter builds the access line from named fields only (referrals.logs
# ACCESS_ATOMS): method, route template, status, bytes, latency and both request ids.
# Never the path (it holds referral ids), the request line or query string (filters and
# cursors must never become a log of searches), the Referer or the user.  This format
# string is therefore only the line's "message".
access_log_format = "request"
_JSON = {"()": "referrals.logs.JsonFormatter"}
# Replaces gunicorn's handlers and formatters (its defaults print plain text).  The
# application's loggers ("referrals.*") get their own JSON handler and do not propagate,
# so each of their records is printed once (referrals.logs.configure finds this handler
# and adds none); the root catches the rest (libraries, warnings) in JSON too.
logconfig_dict = {
    "root": {"level": "WARNING", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {
            "level": loglevel.upper(),
            "handlers": ["error_console"],
            "propagate": False,
        },
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "referrals": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {"json": _JSON},
}
