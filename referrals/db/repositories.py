"""Queries, in one place per aggregate.  Repositories flush; they never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from referrals.db.models import (
    BreakGlassGrant,
    DeadlineNotice,
    IdempotencyKey,
    OutboxMessage,
    Referral,
    RoutingRuleSet,
    Unit,
)


@dataclass(frozen=True)
class ListFilter:
    sending_unit: str | None = None
    receiving_unit: str | None = None
    status: str | None = None
    priority: str | None = None
    # Overdue: still awaiting a decision (one of ``pending_statuses``) past ``due_at``.
    overdue: bool | None = None
    now: datetime | None = None
    pending_statuses: tuple[str, ...] = ()
    hidden_from_receiver: tuple[str, ...] = ()


_REFERRAL_BY_ID = select(Referral).where(Referral.id == bindparam("id"))


class ReferralRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, referral_id: uuid.UUID, *, for_update: bool = False) -> Referral | None:
        """``for_update``: lock the row (PostgreSQL) so that a legal hold and an erasure
        of the same referral take turns instead of both deciding on what they read."""
        if for_update:
            return self.session.get(Referral, referral_id, with_for_update=True)
        if (Referral, (referral_id,), None) in self.session.identity_map:
            return self.session.get(Referral, referral_id)  # whatever the session holds
        # The SELECT ``session.get`` sends, built once: it built the statement and its
        # cache key anew on every call, a read's largest cost after the round trip.
        return self.session.execute(_REFERRAL_BY_ID, {"id": referral_id}).scalar_one_or_none()

    def delete(self, referral: Referral) -> None:
        self.forget_idempotency_keys(referral)
        self.session.delete(referral)
        self.session.flush()

    def forget_idempotency_keys(self, referral: Referral) -> None:
        """Their fingerprints are keyed digests of the request body: personal data."""
        for key in self.session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.referral_id == referral.id)
        ):
            self.session.delete(key)

    def page(
        self, where: ListFilter, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[Referral]:
        """Newest first, keyset-paginated on (created_at, id): stable under inserts."""
        query = select(Referral).where(_visibility(where))
        if where.status:
            query = query.where(Referral.status == where.status)
        if where.priority:
            query = query.where(Referral.priority == where.priority)
        if where.overdue is not None and where.now is not None:
            # "IS NOT NULL" first: NOT (NULL < now) is NULL, which would hide drafts.
            overdue = and_(
                Referral.due_at.is_not(None),
                Referral.due_at < where.now,
                Referral.status.in_(where.pending_statuses),
            )
            query = query.where(overdue if where.overdue else not_(overdue))
        if after is not None:
            query = query.where(tuple_(Referral.created_at, Referral.id) < tuple_(*after))
        query = query.order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit)
        return self.session.scalars(query).all()

    def with_personal_number_index(self, index: str) -> Sequence[Referral]:
        return self.session.scalars(
            select(Referral).where(Referral.personal_number_index == index)
        ).all()

    def kek_usage(self) -> dict[str, int]:
        rows = self.session.execute(
            select(Referral.kek_id, func.count())
            .where(Referral.kek_id.is_not(None))
            .group_by(Referral.kek_id)
        ).all()
        return {str(kek_id): int(count) for kek_id, count in rows}

    def wrapped_keys_under(self, kek_id: str, limit: int) -> Sequence[tuple[Any, ...]]:
        """(id, wrapped key) of up to ``limit`` referrals whose data key ``kek_id`` wraps."""
        query = (
            select(Referral.id, Referral.dek_wrapped)
            .where(Referral.kek_id == kek_id, Referral.dek_wrapped.is_not(None))
            .order_by(Referral.id)
            .limit(limit)
        )
        return [tuple(row) for row in self.session.execute(query).all()]

    def wrapped_keys_not_under(
        self, kek_id: str, limit: int, after: uuid.UUID | None = None
    ) -> Sequence[tuple[Any, ...]]:
        """(id, wrapped key, KEK id) of referrals whose data key another KEK wraps."""
        query = (
            select(Referral.id, Referral.dek_wrapped, Referral.kek_id)
            .where(Referral.kek_id.is_not(None), Referral.kek_id != kek_id)
            .order_by(Referral.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(Referral.id > after)
        return [tuple(row) for row in self.session.execute(query).all()]

    def replace_wrapped_key(
        self, referral_id: uuid.UUID, old_kek_id: str, wrapped: bytes, kek_id: str
    ) -> bool:
        """Swap the wrapped key without touching the row's version: re-wrapping changes
        no case data, so it must not make clients' ETags stale or their edits conflict.
        The old KEK id in the WHERE makes a concurrent re-wrap of the same row a no-op."""
        result = self.session.execute(
            update(Referral)
            .where(Referral.id == referral_id, Referral.kek_id == old_kek_id)
            .values(dek_wrapped=wrapped, kek_id=kek_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    def replace_wrapped_keys(self, changes: Sequence[tuple[uuid.UUID, str, bytes, str]]) -> int:
        """Many ``replace_wrapped_key`` in one executemany (pipelined on PostgreSQL):
        ``(referral id, old KEK id, wrapped key, KEK id)`` each; returns how many rows
        changed.  The same compare-and-swap on the old KEK id, and no version bump."""
        if not changes:
            return 0
        table = cast(Table, Referral.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.kek_id == bindparam("b_old"))
            .values(dek_wrapped=bindparam("b_wrapped"), kek_id=bindparam("b_kek"))
        )
        result = self.session.connection().execute(
            statement,
            [
                {"b_id": referral_id, "b_old": old, "b_wrapped": wrapped, "b_kek": kek_id}
                for referral_id, old, wrapped, kek_id in changes
            ],
        )
        return int(getattr(result, "rowcount", 0))

    def active_grant(
        self, actor: str, referral_id: uuid.UUID, now: datetime
    ) -> BreakGlassGrant | None:
        return self.session.scalars(
            select(BreakGlassGrant).where(
                BreakGlassGrant.actor == actor,
                BreakGlassGrant.referral_id == referral_id,
                BreakGlassGrant.expires_at > now,
            )
        ).first()

    def add_grant(self, grant: BreakGlassGrant) -> None:
        self.session.add(grant)
        self.session.flush()

    def idempotency_key(self, actor: str, key: str) -> IdempotencyKey | None:
        return self.session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
        ).one_or_none()

    def add_idempotency_key(self, record: IdempotencyKey) -> None:
        self.session.add(record)
        self.session.flush()


def _visibility(where: ListFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if where.sending_unit:
        clauses.append(Referral.sending_unit_id == where.sending_unit)
    if where.receiving_unit:
        clauses.append(
            and_(
                Referral.receiving_unit_id == where.receiving_unit,
                Referral.status.not_in(where.hidden_from_receiver),
            )
        )
    return or_(*clauses) if clauses else false()


# Built once: the statement of every create+submit (UnitRepository.kinds_with_latest_rules).
# The rules come as text on every unit's row (a few dozen rows of about a kilobyte).
_LATEST_VERSION = (
    select(RoutingRuleSet.version)
    .order_by(RoutingRuleSet.version.desc())
    .limit(1)
    .scalar_subquery()
)
_KINDS_WITH_LATEST_RULES = (
    select(Unit.id, Unit.kind, RoutingRuleSet.version, RoutingRuleSet.rules.cast(Text))
    .outerjoin(RoutingRuleSet, RoutingRuleSet.version == _LATEST_VERSION)
    .order_by(Unit.id)
)


class UnitRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, unit_id: str) -> Unit | None:
        return self.session.get(Unit, unit_id)

    def all(self) -> Sequence[Unit]:
        return self.session.scalars(select(Unit).order_by(Unit.id)).all()

    def kinds_with_latest_rules(self) -> tuple[dict[str, str], tuple[int, str] | None]:
        """Every unit's kind by id (there are a few dozen units at most) and, in the same
        statement, the newest routing rule set as (version, rules as JSON text), or None
        when there is none: what deciding where a referral goes reads, in one round trip.
        Columns, not Unit objects: deciding needs only the kinds, and a create paid more
        for building the units' ORM objects than for the query (bench_naive).  Sent on the
        session's connection (Core): it reads no mapped objects, so the ORM's execution
        layer (and its autoflush: nothing deciding a route may flush a half-made change)
        would only add cost."""
        rows = self.session.connection().execute(_KINDS_WITH_LATEST_RULES).all()
        kinds = {unit_id: kind for unit_id, kind, _, _ in rows}
        if not rows or rows[0][2] is None:
            return kinds, None
        return kinds, (int(rows[0][2]), rows[0][3])

    def add(self, unit: Unit) -> None:
        self.session.add(unit)
        self.session.flush()

    def secret_kek_usage(self) -> dict[str, int]:
        rows = self.session.execute(
            select(Unit.webhook_secret_kek_id, func.count())
            .where(Unit.webhook_secret_kek_id.is_not(None))
            .group_by(Unit.webhook_secret_kek_id)
        ).all()
        return {str(kek_id): int(count) for kek_id, count in rows}

    def with_secret(self) -> Sequence[Unit]:
        return self.session.scalars(select(Unit).where(Unit.webhook_secret.is_not(None))).all()

    def with_secret_not_under(self, kek_id: str) -> Sequence[Unit]:
        return self.session.scalars(
            select(Unit).where(
                Unit.webhook_secret_kek_id.is_not(None), Unit.webhook_secret_kek_id != kek_id
            )
        ).all()

    def replace_secret(self, unit_id: str, old: bytes, new: bytes, kek_id: str) -> bool:
        """Compare-and-swap: False when the secret changed meanwhile (rotated by an admin),
        so a re-seal can never bring back a secret that was just replaced."""
        result = self.session.execute(
            update(Unit)
            .where(Unit.id == unit_id, Unit.webhook_secret == old)
            .values(webhook_secret=new, webhook_secret_kek_id=kek_id)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    def receivers(self) -> Sequence[Unit]:
        return self.session.scalars(
            select(Unit).where(Unit.kind == "receiver").order_by(Unit.id)
        ).all()


class RoutingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def latest(self) -> RoutingRuleSet | None:
        return self.session.scalars(
            select(RoutingRuleSet).order_by(RoutingRuleSet.version.desc()).limit(1)
        ).first()

    def get(self, version: int) -> RoutingRuleSet | None:
        return self.session.get(RoutingRuleSet, version)

    def versions(self) -> Sequence[RoutingRuleSet]:
        return self.session.scalars(
            select(RoutingRuleSet).order_by(RoutingRuleSet.version.desc())
        ).all()

    def add(self, ruleset: RoutingRuleSet) -> None:
        self.session.add(ruleset)
        self.session.flush()


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: OutboxMessage) -> None:
        self.session.add(message)

    def get(self, message_id: uuid.UUID) -> OutboxMessage | None:
        return self.session.get(OutboxMessage, message_id)

    def claim_due(
        self, now: datetime, until: datetime, token: uuid.UUID, limit: int
    ) -> Sequence[uuid.UUID]:
        """Claim up to ``limit`` messages that are due and not claimed by a live worker.

        One UPDATE, so the claim takes the write lock at once: on SQLite a read first
        would let two workers deadlock upgrading their locks.  On PostgreSQL the candidates
        are locked ``FOR UPDATE SKIP LOCKED``, so workers claiming at the same moment take
        different messages instead of queueing behind each other; the conditions are
        repeated on the UPDATE, which PostgreSQL re-checks on a row changed meanwhile."""
        claimable = (
            OutboxMessage.state == "pending",
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
        )
        # MATERIALIZED: PostgreSQL would otherwise re-run the subquery per outer row as a
        # semi-join and the LIMIT would not hold (one worker claiming the whole backlog).
        candidates = (
            select(OutboxMessage.id)
            .where(*claimable)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("candidates")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        claim = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(select(candidates.c.id)), *claimable)
            .values(
                locked_until=until,
                claim_token=token,
                attempts=OutboxMessage.attempts + 1,
                last_attempt_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if self.session.get_bind().dialect.update_returning:
            return self.session.scalars(claim.returning(OutboxMessage.id)).all()
        # SQLite before 3.35 has no RETURNING: read the claim back by its token.
        self.session.execute(claim)
        return self.session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.claim_token == token)
        ).all()

    def renew(
        self, message_id: uuid.UUID, token: uuid.UUID, now: datetime, until: datetime
    ) -> bool:
        """Extend a live claim before sending; False when it ran out or was taken over."""
        result = self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.claim_token == token,
                OutboxMessage.locked_until > now,
            )
            .values(locked_until=until)
        )
        return _rowcount(result) == 1

    def settle(self, message_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool:
        """Record an attempt's result, if the claim is still ours (not expired and taken)."""
        result = self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.claim_token == token)
            .values(locked_until=None, claim_token=None, **values)
        )
        return _rowcount(result) == 1

    def page(
        self,
        *,
        state: str | None,
        unit: str | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> Sequence[OutboxMessage]:
        query = select(OutboxMessage)
        if state is not None:
            query = query.where(OutboxMessage.state == state)
        if unit is not None:
            query = query.where(OutboxMessage.unit_id == unit)
        if after is not None:
            query = query.where(tuple_(OutboxMessage.created_at, OutboxMessage.id) > tuple_(*after))
        return self.session.scalars(
            query.order_by(OutboxMessage.created_at, OutboxMessage.id).limit(limit)
        ).all()

    def prune(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` delivered or skipped messages created before ``before``."""
        oldest = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.state.in_(("delivered", "skipped")),
                OutboxMessage.created_at < before,
            )
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        )
        result = self.session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.id.in_(oldest.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    def overdue_without_notice(self, now: datetime, limit: int) -> Sequence[Referral]:
        """Referrals still awaiting a decision past their deadline, not yet escalated."""
        noticed = exists().where(
            DeadlineNotice.referral_id == Referral.id,
            DeadlineNotice.due_at == Referral.due_at,
            DeadlineNotice.unit_id == Referral.receiving_unit_id,
        )
        return self.session.scalars(
            select(Referral)
            .where(
                Referral.status == "requested",
                Referral.due_at.is_not(None),
                Referral.due_at < now,
                Referral.erased_at.is_(None),
                ~noticed,
            )
            .order_by(Referral.due_at)
            .limit(limit)
        ).all()

    def add_notice(self, notice: DeadlineNotice) -> None:
        self.session.add(notice)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0))
