"""The one audit recorder.  Use cases' commits and the API's error path both call it.

An event is written into the session of the work it records, so the two commit together
or not at all: when the event cannot be written, the change is not made and the request
fails (``AuditUnavailable`` -> 503).  Events carry identifiers and codes only: never a
personal value, a token or a search term.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, CursorResult, Table, insert, update
from sqlalchemy.orm import Session

from referrals.audit.actions import AuditAction, Outcome, outcome_of
from referrals.auth.principal import ClaimedActor, Principal
from referrals.db.first_write import COMMITS_ALONE
from referrals.db.inserts import execute_insert
from referrals.db.models import AuditEvent, AuditEventTarget, AuditRefusalTally


class AuditUnavailable(Exception):
    """The audit event could not be written: nothing may be returned or changed."""


TARGET_ID_LENGTH = 64
TARGETS = cast(Table, AuditEventTarget.__table__)
EVENTS = cast(Table, AuditEvent.__table__)


@dataclass
class PendingAudit:
    """The event a request will produce, filled in as the request goes."""

    action: AuditAction
    request_id: str
    success_status: int
    actor: Principal | None = None
    claimed: ClaimedActor | None = None
    target_type: str | None = None
    target_id: str | None = None
    # Set when the access went outside the actor's normal scope (break the glass).
    purpose: str | None = None
    # Referrals the response discloses besides ``target`` (a list's items, a search's
    # matches, possible duplicates): each appears in that referral's access log.
    disclosed: set[uuid.UUID] = field(default_factory=set)
    # An operator's reason for a command-line change (a code or ticket reference).
    reason: str | None = None
    # False for an actor the service did not establish itself: an operator's --actor.
    actor_verified: bool = True
    # Set once the event's transaction has committed, not merely flushed: a rolled-back
    # attempt (a lost race, a retried create) must not count as recorded.
    written: bool = field(default=False)

    def target(self, kind: str, identifier: object) -> None:
        # A path argument is whatever the client sent: cut to the column's size, so that a
        # long one is still recorded instead of failing the request closed.
        self.target_type, self.target_id = kind, str(identifier)[:TARGET_ID_LENGTH]

    def disclose(self, referral_ids: Iterable[uuid.UUID]) -> None:
        self.disclosed.update(referral_ids)


def record(
    session: Session | Connection,
    pending: PendingAudit,
    http_status: int,
    now: datetime,
    *,
    alone: bool = False,
) -> uuid.UUID:
    """Insert the event in ``session``'s transaction; a failure surfaces here.

    One Core INSERT of the table on the session's own connection, not an ORM object and
    a flush, nor an ORM-enabled INSERT (its bulk-insert bookkeeping per statement): every
    request pays for this line (tests/benchmarks/bench_audit.py).
    A response that disclosed several referrals adds one multi-row INSERT of their ids;
    a refused or failed call disclosed nothing, so it names nothing.

    ``alone``: the caller's work wrote nothing, so when no transaction has begun the
    event's INSERT may be a transaction of its own (referrals/db/first_write.py).  An
    event that names other referrals never is: its two INSERTs commit together."""
    return record_many(session, [(pending, http_status, now)], alone=alone)[0]


def record_many(
    session: Session | Connection,
    events: Sequence[tuple[PendingAudit, int, datetime]],
    *,
    alone: bool = False,
) -> list[uuid.UUID]:
    """Several requests' events in one multi-row INSERT (and their disclosures in one
    more), in ``session``'s transaction: the group commit of reads (``AuditGroup``)."""
    connection = session.connection() if isinstance(session, Session) else session
    rows: list[dict[str, object]] = []
    targets: list[dict[str, uuid.UUID]] = []
    ids: list[uuid.UUID] = []
    for pending, http_status, now in events:
        event_id = uuid.uuid4()
        ids.append(event_id)
        rows.append(_event_row(event_id, pending, http_status, now))
        if pending.disclosed and outcome_of(http_status) is Outcome.ALLOWED:
            targets.extend(
                {"event_id": event_id, "referral_id": r} for r in sorted(pending.disclosed)
            )
    if len(rows) == 1:
        # The one event of almost every request: the statement compiled once per dialect,
        # its parameters converted by the columns' own types, sent as it is.
        _insert_one_event(connection, rows[0], alone=alone and not targets)
    else:
        # The tables, not the mapped classes: plain Core (one statement for many rows),
        # without the ORM's bulk-insert bookkeeping.
        connection.execute(insert(EVENTS), rows)
    if targets:
        _insert_targets(connection, targets)
    return ids


_ALONE = {COMMITS_ALONE: True}


def _insert_one_event(connection: Connection, row: dict[str, object], *, alone: bool) -> None:
    """The same INSERT Core would send, without compiling it (or its cache key) anew per
    request: ``tests/benchmarks/bench_audit.py`` measured the Core call at a sixth of what
    the audit adds to a read."""
    execute_insert(connection, EVENTS, [row], _ALONE if alone else None)


# PostgreSQL takes a list's disclosures as two arrays in one statement: two parameters,
# not two per referral (a list names up to 200, a reassignment 1,000s).
_TARGETS_FROM_ARRAYS = (
    "INSERT INTO audit_event_targets (event_id, referral_id) "
    "SELECT * FROM unnest(CAST(%(events)s AS UUID[]), CAST(%(referrals)s AS UUID[]))"
)


def _insert_targets(connection: Connection, targets: list[dict[str, uuid.UUID]]) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _TARGETS_FROM_ARRAYS,
            {
                "events": [t["event_id"] for t in targets],
                "referrals": [t["referral_id"] for t in targets],
            },
        )
    else:
        connection.execute(insert(TARGETS), targets)


def _event_row(
    event_id: uuid.UUID, pending: PendingAudit, http_status: int, now: datetime
) -> dict[str, object]:
    actor = pending.actor
    claimed = pending.claimed
    return {
        "id": event_id,
        "recorded_at": now,
        "request_id": pending.request_id,
        "actor_verified": actor is not None and pending.actor_verified,
        "actor_issuer": actor.issuer if actor else (claimed.issuer if claimed else None),
        "actor_subject": actor.subject if actor else (claimed.subject if claimed else None),
        "client_id": actor.client_id if actor else None,
        "roles": sorted(actor.roles) if actor else [],
        "unit": actor.unit if actor else None,
        "action": pending.action,
        "target_type": pending.target_type,
        "target_id": pending.target_id,
        "outcome": outcome_of(http_status),
        "http_status": http_status,
        "purpose": pending.purpose,
        "reason": pending.reason,
    }


def record_unverified(
    session: Session, pending: PendingAudit, http_status: int, now: datetime
) -> None:
    """A refusal whose actor is only claimed: counted, one full event per minute.

    The first refusal of a claimed actor, action and status in a minute is recorded as an
    event like any other (hash-chained); the ones after it add one to that minute's tally.
    Either way one write in the caller's transaction, so a refusal that cannot be counted
    still fails the request.  Raises ``IntegrityError`` when two first refusals race; the
    caller retries and the second one counts."""
    window = now.replace(second=0, microsecond=0)
    key = claim_key(pending, http_status)
    counted = session.execute(
        update(AuditRefusalTally)
        .where(AuditRefusalTally.window_start == window, AuditRefusalTally.claim_key == key)
        .values(count=AuditRefusalTally.count + 1)
    )
    if isinstance(counted, CursorResult) and counted.rowcount:
        return
    event_id = record(session, pending, http_status, now)
    session.execute(
        insert(AuditRefusalTally),
        {
            "id": uuid.uuid4(),
            "window_start": window,
            "claim_key": key,
            "event_id": event_id,
            "count": 1,
        },
    )


def claim_key(pending: PendingAudit, http_status: int) -> str:
    """Who the refused token claimed to be, for what: hashed to a fixed size, since the
    claims are the client's and may be long."""
    claimed = pending.claimed
    parts = [
        claimed.issuer if claimed else None,
        claimed.subject if claimed else None,
        str(pending.action),
        http_status,
    ]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()
