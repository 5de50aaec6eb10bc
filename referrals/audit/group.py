"""Group commit of read requests' audit events: one INSERT and one durable commit for all
the reads that reach their commit at the same moment.

A read changes nothing, yet it must not answer before its audit event is durable: one
WAL flush per read was most of a read's cost (tests/benchmarks/bench_naive.py).  With a
worker model that runs requests concurrently (gunicorn gthread, deploy/gunicorn.conf.py),
reads that finish together share that flush:

- A read's unit of work that wrote nothing else (``UnitOfWork.commit``) queues its event
  here and waits.
- If no one is writing, it becomes the leader: it takes every event queued at that
  moment, inserts them in its own transaction (one multi-row INSERT) and commits.
- Readers that queued meanwhile wait for that commit; whoever is still queued when it
  ends leads the next one.  (PostgreSQL groups concurrent commits the same way.)

No reader returns before the commit that holds its own event has succeeded; if it fails,
every reader of that batch fails closed (``AuditUnavailable``).  A request that wrote
anything else (a change, a break-the-glass grant) never comes here: its event commits in
its own transaction, with its change.  One request alone is a batch of one: exactly the
old single INSERT and commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referrals.audit.recorder import AuditUnavailable, PendingAudit, record_many

# Writes a batch of (event, HTTP status, time) in a session's transaction.
Writer = Callable[[Session, Sequence[tuple[PendingAudit, int, datetime]]], object]


@dataclass(eq=False)
class _Queued:
    pending: PendingAudit
    http_status: int
    now: datetime
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class AuditGroup:
    """One per database per process; shared by the threads of a worker."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: list[_Queued] = []
        self._writing = False
        # Figures for benchmarks and tests: batches committed, events in them.
        self.batches = 0
        self.events = 0

    def commit(
        self,
        session: Session,
        pending: PendingAudit,
        http_status: int,
        now: datetime,
        write: Writer = record_many,
    ) -> None:
        """Return once ``pending`` is durable; raise ``AuditUnavailable`` if it is not."""
        mine = _Queued(pending, http_status, now)
        with self._changed:
            self._queue.append(mine)
            while self._writing and not mine.done:
                self._changed.wait()
            if mine.done:
                batch: list[_Queued] = []
            else:
                self._writing = True
                batch, self._queue = self._queue, []
        if batch:
            self._lead(session, batch, write)
        # Otherwise another reader's commit carried ours; this session only read, and
        # its unit of work ends it.
        if mine.error is not None:
            raise AuditUnavailable from mine.error

    def _lead(self, session: Session, batch: list[_Queued], write: Writer) -> None:
        # Until the commit has returned, the batch counts as failed: whatever escapes
        # below (an interrupt included) fails every reader in it closed.
        error: BaseException | None = AuditUnavailable("the batch was not committed")
        try:
            write(session, [(q.pending, q.http_status, q.now) for q in batch])
            session.commit()
            error = None
        except SQLAlchemyError as exc:
            error = exc
        finally:
            with self._changed:
                for queued in batch:
                    queued.done, queued.error = True, error
                if error is None:
                    self.batches += 1
                    self.events += len(batch)
                self._writing = False
                self._changed.notify_all()
