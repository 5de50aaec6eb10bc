"""Gauges read from the database when Prometheus scrapes: one read-only transaction.

Every app instance reports the same values (they are the database's, not the
instance's): aggregate them with ``max`` in rules and panels.  A database that does not
answer yields ``referrals_ready 0`` and nothing else, never an error page: the scrape
itself must keep working while the database is away, so that the alert can fire.

The privacy lifecycle is here too: ``referrals_retention_backlog`` (referrals past
their retention period that the worker has not erased yet, holds excepted) and
``referrals_legal_holds`` (active holds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from referrals.audit import freshness
from referrals.audit.freshness import FreshnessLimits
from referrals.db.engine import Database
from referrals.domain.retention import RetentionPolicy
from referrals.services import monitoring
from referrals.services.monitoring import Snapshot
from referrals.services.outbox import DeliveryState

log = logging.getLogger(__name__)

# The freshness problems, each exported as 0 or 1 so that an alert needs no ``absent``.
PROBLEMS = (freshness.SEALING_BEHIND, freshness.CHECKPOINT_OVERDUE)


class DatabaseCollector(Collector):
    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        limits: FreshnessLimits,
        periods: RetentionPolicy,
    ) -> None:
        self._database = database
        self._periods = periods
        self._clock = clock
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        try:
            snap = monitoring.snapshot(self._database, now, self._periods)
        except SQLAlchemyError:
            log.warning("metrics: database unreachable")
            yield _gauge("referrals_ready", "1 when the database answers (as /readyz).", 0)
            return
        yield _gauge("referrals_ready", "1 when the database answers (as /readyz).", 1)
        yield from _audit(snap, now, self._limits)
        yield from _outbox(snap, now)
        yield from _overdue(snap)
        yield from _lifecycle(snap)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _audit(snap: Snapshot, now: datetime, limits: FreshnessLimits) -> Iterator[Metric]:
    fresh = freshness.judge(snap.backlog, now, limits)
    yield _gauge(
        "referrals_audit_events_pending",
        "Committed audit events waiting for their seal.",
        snap.pending_events,
    )
    yield _gauge(
        "referrals_audit_seal_lag_seconds",
        "How long the oldest unsealed audit event has waited (0: none waits).",
        fresh.oldest_pending_age or 0.0,
    )
    yield _gauge(
        "referrals_audit_unsigned_events",
        "Sealed audit events after the newest signed checkpoint.",
        fresh.unsigned,
    )
    yield _gauge(
        "referrals_audit_unsigned_age_seconds",
        "How long the oldest sealed event has waited for a checkpoint (0: none waits).",
        fresh.oldest_unsigned_age or 0.0,
    )
    if fresh.newest_checkpoint is not None:
        yield _gauge(
            "referrals_audit_checkpoint_age_seconds",
            "Age of the newest signed checkpoint (absent before the first one).",
            max(0.0, (now - fresh.newest_checkpoint).total_seconds()),
        )
    behind = GaugeMetricFamily(
        "referrals_audit_behind",
        "1 when the chain is behind for this reason, by REFERRALS_AUDIT_SEAL_LAG and "
        "REFERRALS_AUDIT_CHECKPOINT_INTERVAL (as audit verify and /readyz judge it).",
        labels=("problem",),
    )
    for problem in PROBLEMS:
        behind.add_metric((problem,), 1 if problem in fresh.problems else 0)
    yield behind


def _outbox(snap: Snapshot, now: datetime) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "referrals_outbox_messages",
        "Webhook messages pending, dead or skipped, by state and receiving unit.",
        labels=("state", "unit"),
    )
    dead = GaugeMetricFamily(
        "referrals_outbox_dead_letters",
        "Dead-lettered webhook messages waiting for an administrator's replay, by unit.",
        labels=("unit",),
    )
    for (state, unit), count in sorted(snap.outbox.items()):
        messages.add_metric((state, unit), count)
        if state == DeliveryState.DEAD.value:
            dead.add_metric((unit,), count)
    yield messages
    yield dead
    oldest = snap.oldest_outbox_pending
    yield _gauge(
        "referrals_outbox_oldest_pending_age_seconds",
        "How long the oldest undelivered webhook has waited (0: none waits).",
        max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
    )


def _overdue(snap: Snapshot) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "referrals_overdue_referrals",
        "Referrals awaiting the receiving unit's decision past their due time, by priority.",
        labels=("priority",),
    )
    for priority, count in sorted(snap.overdue.items()):
        family.add_metric((priority,), count)
    yield family


def _lifecycle(snap: Snapshot) -> Iterator[Metric]:
    """The privacy lifecycle: a growing backlog means the worker's erasure has stopped."""
    yield _gauge(
        "referrals_retention_backlog",
        "Referrals past their retention period, not on legal hold, not yet erased.",
        snap.retention.due,
    )
    yield _gauge("referrals_legal_holds", "Active legal holds.", snap.retention.held)
