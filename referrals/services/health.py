"""Readiness: can this instance serve, and is the audit sealer keeping up?

The sealer's state is reported, not enforced: one stalled sealer is a fault of the whole
deployment, not of this instance, and failing readiness on it would take every instance
out of rotation at once while requests are still being recorded (sealing catches up).
Monitoring alerts on ``audit_sealer`` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from referrals.audit import freshness, sealing
from referrals.audit.freshness import FreshnessLimits
from referrals.db.engine import Database


def readiness(database: Database, now: datetime, limits: FreshnessLimits) -> dict[str, Any]:
    """Raises ``SQLAlchemyError`` when the database does not answer."""
    with database.read_session() as session:
        fresh = freshness.judge(sealing.backlog(session), now, limits)
    return {"status": "ok", "audit_sealer": "ok" if fresh.ok else "behind"}
