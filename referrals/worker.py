"""``referrals worker``: escalate overdue referrals, deliver webhooks and erase referrals
whose retention period has ended, round after round.

Run as many worker processes as needed: claims keep them from sending the same message
twice in normal operation, and leases make a crashed worker's messages come back.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta
from types import FrameType

from referrals.runtime import Runtime
from referrals.services import outbox, retention
from referrals.services.delivery import Round, deliver_round
from referrals.services.escalation import escalate_overdue
from referrals.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.policy = runtime.delivery_policy()
        self.sender = WebhookSender(self.policy.timeout, runtime.webhook_destinations())
        self.metrics = runtime.metrics.worker()
        self._stop = threading.Event()
        self.retention = runtime.retention_policy()
        # When the next look for expired referrals is due (None: at once).
        self._retention_at: datetime | None = None

    def run_round(self) -> Round:
        rt = self.runtime
        escalated = escalate_overdue(rt.unit_of_work, rt.clock)
        result = deliver_round(
            rt.unit_of_work, rt.vault, self.sender, rt.clock, self.policy, self._stop.is_set
        )
        result.escalated = escalated
        result.pruned = outbox.prune(rt.unit_of_work, rt.clock, rt.settings.outbox_retention_days)
        result.erased = self._retention_round()
        if escalated or result.claimed or result.pruned or result.erased:
            log.info("worker round", extra=vars(result))
        self.metrics.round_done(
            delivered=result.delivered,
            failed=result.failed,
            dead=result.dead,
            skipped=result.skipped,
            escalated=escalated,
        )
        for seconds in result.latencies:
            self.metrics.delivery_latency.observe(seconds)
        return result

    def _retention_round(self) -> int:
        """Erase expired referrals, a batch at a time, at most once per interval unless the
        last batch was full (a backlog: go on at once)."""
        rt = self.runtime
        now = rt.clock()
        if self._retention_at is not None and now < self._retention_at:
            return 0
        batch = rt.settings.retention_batch_size
        erased = retention.erase_expired(
            lambda audit: rt.unit_of_work(audit=audit), rt.context, rt.clock, self.retention, batch
        )
        backlog = erased >= batch
        self._retention_at = (
            now if backlog else now + timedelta(seconds=rt.settings.retention_interval)
        )
        return erased

    def run(self, interval: float) -> None:
        """Until SIGTERM or SIGINT; a full batch means a backlog, so go again at once."""
        self._handle_signals()
        try:
            while not self._stop.is_set():
                try:
                    result = self.run_round()
                except Exception:
                    # The database away, a lock timeout: try again next round rather than
                    # exit.  Nothing is lost; claimed messages come back after their lease.
                    log.exception("worker round failed")
                    self.metrics.round_failed()
                    self._stop.wait(interval)
                    continue
                if result.claimed < self.policy.batch_size:
                    self._stop.wait(interval)
        finally:
            self.sender.close()

    def stop(self) -> None:
        self._stop.set()

    def _handle_signals(self) -> None:
        def stop(_signum: int, _frame: FrameType | None) -> None:
            # Finish the message in hand (at most one attempt's timeout); anything claimed
            # but unsent comes back after its lease.
            self._stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
