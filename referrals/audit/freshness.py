"""Is the chain current?  The verifier's second judgement, beside "is it intact".

An intact chain can still be useless: when the sealer has stopped, new events wait
unsealed and unsigned, and tampering with them would go unnoticed.  This names that
state plainly from facts in the database, so it holds for a sealer in any process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from referrals.audit.sealing import Backlog

SEALING_BEHIND = "sealing-behind"
CHECKPOINT_OVERDUE = "checkpoint-overdue"


@dataclass(frozen=True)
class FreshnessLimits:
    # Seconds an event may wait for its seal.
    allowed_lag: float
    # Seconds between checkpoints while there is something new to sign.
    checkpoint_interval: float


@dataclass(frozen=True)
class Freshness:
    problems: tuple[str, ...]
    oldest_pending_age: float | None
    oldest_unsigned_age: float | None
    unsigned: int
    newest_checkpoint: datetime | None

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(backlog: Backlog, now: datetime, limits: FreshnessLimits) -> Freshness:
    pending_age = _age(now, backlog.oldest_pending)
    unsigned_age = _age(now, backlog.oldest_unsigned) if backlog.unsigned else None
    problems = []
    if pending_age is not None and pending_age > limits.allowed_lag:
        problems.append(SEALING_BEHIND)
    # A quiet system has nothing new to sign, so an old checkpoint alone is no problem;
    # sealed events left unsigned past the interval (and the lag, as grace) are.
    if unsigned_age is not None and unsigned_age > limits.checkpoint_interval + limits.allowed_lag:
        problems.append(CHECKPOINT_OVERDUE)
    return Freshness(
        problems=tuple(problems),
        oldest_pending_age=pending_age,
        oldest_unsigned_age=unsigned_age,
        unsigned=backlog.unsigned,
        newest_checkpoint=backlog.newest_checkpoint,
    )


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def explain(fresh: Freshness, limits: FreshnessLimits) -> str:
    """One line for an operator: what waits, how long, and what is allowed."""
    reasons = []
    if SEALING_BEHIND in fresh.problems:
        reasons.append(
            f"the oldest unsealed event has waited {fresh.oldest_pending_age:.0f} s "
            f"(allowed: {limits.allowed_lag:g} s)"
        )
    if CHECKPOINT_OVERDUE in fresh.problems:
        reasons.append(
            f"{fresh.unsigned} sealed events have waited {fresh.oldest_unsigned_age:.0f} s "
            f"for a checkpoint (interval: {limits.checkpoint_interval:g} s)"
        )
    return "behind: " + "; ".join(reasons) if reasons else "current"
