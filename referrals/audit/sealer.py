"""The sealer loop: the one implementation behind `referrals audit seal --follow` and the
quickstart's thread.

A round seals what is pending and signs a checkpoint when one is due.  A round that fails
(the database away, a lock timeout, a connection killed mid-round) is logged by exception
class only, backed off with jitter and retried: a sealer that silently stops leaves the
trail unsealed and unsigned while everything else looks fine.  Only a fault that is not a
database error (a bug, a broken key) ends the loop, and the caller exits non-zero.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from referrals.audit import sealing
from referrals.db.models import AuditCheckpoint

log = logging.getLogger(__name__)

# The longest pause after failed rounds: long enough not to hammer a database that is
# down, short enough that sealing resumes soon after it is back.
BACKOFF_CAP = 30.0


@dataclass(frozen=True)
class SealerPolicy:
    # Seconds between rounds while nothing is pending.
    interval: float = 1.0
    # A checkpoint once this many sealed events are unsigned ...
    checkpoint_events: int = 1000
    # ... or once the oldest unsigned one has waited this many seconds.
    checkpoint_interval: float = 60.0
    backoff_cap: float = BACKOFF_CAP
    # How far from first sight an event's recorded_at may be before it is flagged.
    time_tolerance: timedelta = sealing.DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Round:
    sealed: int
    checkpoint: int | None  # the sequence number signed, if a checkpoint was written


class RoundObserver(Protocol):
    """Told of each round (``referrals.metrics.families.SealerMetrics``)."""

    def succeeded(self, sealed: int, checkpoint: int | None) -> None: ...

    def failed(self) -> None: ...


class _Unobserved:
    def succeeded(self, sealed: int, checkpoint: int | None) -> None:
        return

    def failed(self) -> None:
        return


class Sealer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        signing_key: Ed25519PrivateKey,
        policy: SealerPolicy,
        *,
        jitter: Callable[[], float] = random.random,
        publish: Callable[[AuditCheckpoint], None] | None = None,
        observer: RoundObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._key = signing_key
        self.policy = policy
        self._jitter = jitter
        # Called with each checkpoint signed, after it committed (``--publish DIR``).
        self._publish = publish
        self._observer = observer or _Unobserved()
        self._stop = threading.Event()
        # Failed rounds since start, for tests and operators; the log has each one.
        self.failures = 0

    def run_round(self) -> Round:
        with self._sessions() as session:
            sealed = sealing.seal_pending(
                session, self._clock, tolerance=self.policy.time_tolerance
            )
        signed = None
        with self._sessions() as session:
            if self._checkpoint_due(sealing.unsigned(session)):
                row = sealing.checkpoint(session, self._key, self._clock)
                signed = row.seq if row else None
                if row is not None and self._publish is not None:
                    self._publish(row)
        return Round(sealed, signed)

    def run(self) -> None:
        """Round after round until ``stop()``; raises only on a fault it cannot survive."""
        streak = 0
        while not self._stop.is_set():
            try:
                result = self.run_round()
            except SQLAlchemyError as exc:
                streak += 1
                self.failures += 1
                self._observer.failed()
                delay = self.backoff(streak)
                # The class only: a database message can quote SQL and identifiers.
                log.warning(
                    "audit sealer round failed; retrying",
                    extra={"error": type(exc).__name__, "retry_in": round(delay, 2)},
                )
                self._stop.wait(delay)
                continue
            streak = 0
            self._observer.succeeded(result.sealed, result.checkpoint)
            if result.sealed or result.checkpoint is not None:
                log.info(
                    "audit sealer round",
                    extra={"sealed": result.sealed, "checkpoint": result.checkpoint},
                )
            if result.sealed < sealing.DEFAULT_BATCH:
                self._stop.wait(self.policy.interval)

    def stop(self) -> None:
        self._stop.set()

    def backoff(self, streak: int) -> float:
        """Exponential from the round interval, capped, with "equal jitter": several
        sealers that failed together do not retry together, and none waits near zero."""
        ceiling = min(self.policy.backoff_cap, self.policy.interval * 2.0 ** min(streak, 30))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def _checkpoint_due(self, waiting: sealing.Unsigned) -> bool:
        if waiting.count == 0 or waiting.oldest is None:
            return False
        if waiting.count >= self.policy.checkpoint_events:
            return True
        waited = (self._clock() - waiting.oldest).total_seconds()
        return waited >= self.policy.checkpoint_interval
