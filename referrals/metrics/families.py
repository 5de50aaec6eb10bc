"""The metric families, grouped by the process kind that exports them.

Each group is made the first time a process needs it and registered in that process's
own registry (``Metrics.registry``): a worker process never exports empty request
families, and each test's app counts only its own requests.  Under gunicorn's
multiprocess mode the values also go to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client
does that by itself when the variable is set) and the exposition reads them from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latency: a sync worker answers most requests in milliseconds; 30 s is
# gunicorn's timeout.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Webhook delivery, from the change to the receiver's 2xx: seconds when all is well,
# hours when a receiver is down and the backoff grows (REFERRALS_WEBHOOK_BACKOFF_CAP).
DELIVERY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0)

# Methods outside this set are counted as "other": a client must not be able to mint
# label values (and with them time series) by sending made-up methods.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class HttpMetrics:
    """The app's: every request by route template and status class, and what guards it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status_class")
        self.requests = Counter(
            "referrals_http_requests",
            "HTTP requests answered, by method, route template and status class.",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            "referrals_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status class.",
            labels,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.jwks_refresh_failures = Counter(
            "referrals_jwks_refresh_failures",
            "Failed fetches of the identity provider's discovery document or JWKS.",
            registry=registry,
        )

        # (method, route, status) -> the two children: ``labels()`` validates and locks on
        # every call, a dict lookup does not.  Bounded: routes and methods are closed sets.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the matched rule's template, never a path."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            values = (method if method in METHODS else "other", route, status_class(status))
            children = (self.requests.labels(*values), self.duration.labels(*values))
            if method in METHODS:  # a made-up method is not worth a cache entry
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class GuardMetrics:
    """Every process that serves metrics: the scrapes it refused."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refusals = Counter(
            "referrals_metrics_refusals",
            "Scrapes refused: no token, a wrong token, or metrics disabled (reason).",
            ("reason",),
            registry=registry,
        )

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()


class WorkerMetrics:
    """``referrals worker``: rounds, deliveries, escalations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "referrals_worker_rounds",
            "Worker rounds, by outcome (ok, failed).",
            ("outcome",),
            registry=registry,
        )
        self.last_round = Gauge(
            "referrals_worker_last_round_timestamp_seconds",
            "When the worker last finished a round without error (Unix time).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.deliveries = Counter(
            "referrals_webhook_deliveries",
            "Webhook attempts by result (delivered, failed, dead, skipped).",
            ("result",),
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "referrals_webhook_delivery_latency_seconds",
            "From the change a webhook announces to its delivery (retries included).",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.escalations = Counter(
            "referrals_escalations",
            "Overdue referrals escalated to their sending unit.",
            registry=registry,
        )

    def round_done(
        self, *, delivered: int, failed: int, dead: int, skipped: int, escalated: int
    ) -> None:
        self.rounds.labels("ok").inc()
        self.last_round.set(time.time())
        for result, count in (
            ("delivered", delivered),
            ("failed", failed),
            ("dead", dead),
            ("skipped", skipped),
        ):
            if count:
                self.deliveries.labels(result).inc(count)
        if escalated:
            self.escalations.inc(escalated)

    def round_failed(self) -> None:
        self.rounds.labels("failed").inc()


class SealerMetrics:
    """``referrals audit seal --follow``: rounds, events sealed, checkpoints signed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "referrals_sealer_rounds",
            "Audit sealer rounds, by outcome (ok, failed).",
            ("outcome",),
            registry=registry,
        )
        self.last_round = Gauge(
            "referrals_sealer_last_round_timestamp_seconds",
            "When the sealer last finished a round without error (Unix time).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.sealed = Counter(
            "referrals_audit_events_sealed",
            "Audit events this sealer gave their places in the hash chain.",
            registry=registry,
        )
        self.checkpoints = Counter(
            "referrals_audit_checkpoints_signed",
            "Signed checkpoints of the chain head written by this sealer.",
            registry=registry,
        )

    def succeeded(self, sealed: int, checkpoint: int | None) -> None:
        self.rounds.labels("ok").inc()
        self.last_round.set(time.time())
        if sealed:
            self.sealed.inc(sealed)
        if checkpoint is not None:
            self.checkpoints.inc()

    def failed(self) -> None:
        self.rounds.labels("failed").inc()


G = TypeVar("G")


class Metrics:
    """One process's metrics: its registry and the groups it has made so far."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._groups: dict[Callable[[CollectorRegistry], object], object] = {}
        self._lock = threading.Lock()

    def http(self) -> HttpMetrics:
        return self._group(HttpMetrics)

    def guard(self) -> GuardMetrics:
        return self._group(GuardMetrics)

    def worker(self) -> WorkerMetrics:
        return self._group(WorkerMetrics)

    def sealer(self) -> SealerMetrics:
        return self._group(SealerMetrics)

    def _group(self, kind: Callable[[CollectorRegistry], G]) -> G:
        group = self._groups.get(kind)
        if group is None:
            with self._lock:  # two threads (the quickstart's) must not register one twice
                group = self._groups.get(kind)
                if group is None:
                    group = self._groups[kind] = kind(self.registry)
        return group  # type: ignore[return-value]
