"""The new referrals a use case makes, held until it writes them table by table.

Creating a referral makes a referral, its timeline events and, when it is submitted, an
outbox message.  Through the session they would be one INSERT per object and, for a
referral submitted at once, an INSERT of the draft and then an UPDATE for its submission.
``NewRows`` stands in for the unit of work while the create use case
(``referrals.open_new``) builds them: what it adds to the session or the outbox is held
here, never tracked by the session, and ``insert`` writes each table's rows in one
statement (``referrals.db.inserts``).  The API's create writes one referral this way, the
bulk import (services/bulk_import.py) a whole batch.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, cast

from sqlalchemy import Table

from referrals.db.inserts import COPY_FROM, column_values, insert_rows, pipelined
from referrals.db.models import OutboxMessage, Referral, TimelineEvent
from referrals.services.uow import WROTE, UnitOfWork

# The tables written, in the order their foreign keys need.
_ORDER = (Referral, TimelineEvent, OutboxMessage)


class _Collected:
    """The ``add`` of a session or a repository, holding the new objects instead; every
    other attribute is the real one's."""

    def __init__(self, real: Any, objects: list[object]) -> None:
        self._real = real
        self._objects = objects

    def add(self, obj: object) -> None:
        self._objects.append(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class NewRows:
    """The unit of work as the create use case sees it while it makes referrals."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.objects: list[object] = []
        self.session = _Collected(uow.session, self.objects)
        self.outbox = _Collected(uow.outbox, self.objects)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uow, name)

    @property
    def uow(self) -> UnitOfWork:
        """This, typed as what the use case's helpers take."""
        return cast(UnitOfWork, self)

    def insert(self) -> None:
        """Write what was made, in the unit of work's transaction; then forget it."""
        rows: dict[type, list[dict[str, Any]]] = {model: [] for model in _ORDER}
        for obj in self.objects:
            if isinstance(obj, Referral):
                # One version per change, as the API counts them: 1 for the stored draft,
                # one more for its submission, i.e. one per timeline event.  Set on the
                # object too: the answer's version (the ETag) is read from it.
                obj.version = len(obj.events)
                for event in obj.events:
                    # The foreign key a flush copies from the relationship.
                    rows[TimelineEvent].append({**column_values(event), "referral_id": obj.id})
            elif not isinstance(obj, OutboxMessage):
                raise TypeError(f"a new referral does not come with {type(obj).__name__} rows")
            rows[type(obj)].append(column_values(obj))
        self.objects.clear()
        session = self._uow.session
        # One round trip for the API's few INSERTs; an import batch's COPY (from
        # COPY_FROM rows of a table) cannot run in a pipeline, and needs none.
        few = all(len(values) < COPY_FROM for values in rows.values())
        with pipelined(session) if few else nullcontext():
            for model in _ORDER:
                groups: dict[frozenset[str], list[dict[str, Any]]] = {}
                for values in rows[model]:
                    groups.setdefault(frozenset(values), []).append(values)
                for group in groups.values():
                    insert_rows(session, cast(Table, model.__table__), group)
        # A COPY goes round the session's statement events: say that this transaction
        # wrote, so that its audit event commits with it (services/uow.py), never in a
        # read's shared commit (audit/group.py).
        session.info[WROTE] = True
