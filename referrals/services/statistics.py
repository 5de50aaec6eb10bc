"""Statistics without people: counts of submitted referrals, small cells suppressed.

Counted are referrals *submitted* in the period (Stockholm calendar days, both ends
included), by one or two of: month of submission, district of residence, concern
category, priority and outcome.  A referral has one or more categories: a table by
category counts *mentions* (a referral with two categories counts under both), so its
totals stay the sums of their cells and the suppression's arithmetic holds.

Every number published (cells, row and column totals, the total) goes through
referrals/domain/suppression.py.  Time to decision (submission to the first accept or
decline, in hours) is given as percentiles per row and overall, only over groups of at
least ``min_cell`` decided referrals.  The answer names no referral and holds no case
content; the request is audited without targets.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import product
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from referrals.auth import policy
from referrals.db.models import Referral, TimelineEvent
from referrals.domain import suppression
from referrals.domain.codes import FINAL_STATUSES, Action, Category, OutcomeCode, Priority, Status
from referrals.services.context import Context
from referrals.services.errors import Forbidden, Unprocessable
from referrals.services.uow import UnitOfWork

DIMENSIONS = ("month", "district", "category", "priority", "outcome")
PERCENTS = (25, 50, 75, 90)
# A referral still open has no outcome yet; a completed one has its outcome code; any
# other final status is its own outcome.
OPEN = "open"
OUTCOMES = (
    OPEN,
    *(o.value for o in OutcomeCode),
    *sorted(s.value for s in FINAL_STATUSES if s is not Status.COMPLETED),
)
NO_DISTRICT = "unknown"
# Longest period one request may count: keeps a table (and its suppression) small.
MAX_DAYS = 3 * 366
# Days the service can have counted; far ones would overflow Stockholm-to-UTC arithmetic.
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
DECISIONS = (Action.ACCEPT.value, Action.DECLINE.value)


@dataclass(frozen=True)
class Query:
    start: date
    end: date  # included
    by: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """What statistics know of one referral: coarse codes and a duration, nothing else."""

    values: dict[str, tuple[str, ...]]
    hours_to_decision: float | None


def query_for(ctx: Context, start: date | None, end: date | None, by: tuple[str, ...]) -> Query:
    """The period asked for: by default the year up to today (from the first of its month)."""
    if start is not None and not EARLIEST <= start <= LATEST:
        raise Unprocessable(f"must be from {EARLIEST} to {LATEST}", field="from")
    if end is not None and not EARLIEST <= end <= LATEST:
        raise Unprocessable(f"must be from {EARLIEST} to {LATEST}", field="to")
    end = end or ctx.today
    start = start or date(end.year - 1, end.month, 1)
    if start > end:
        raise Unprocessable("must not be before from", field="to")
    if (end - start).days >= MAX_DAYS:
        raise Unprocessable(f"the period may be at most {MAX_DAYS} days", field="to")
    return Query(start=start, end=end, by=by)


def report(uow: UnitOfWork, ctx: Context, query: Query, *, min_cell: int) -> dict[str, Any]:
    if not policy.may_read_statistics(ctx.principal):
        raise Forbidden("only analysts read statistics")
    zone = ZoneInfo(ctx.deadlines.timezone)
    facts = list(_facts(uow, query, zone))
    uow.commit()
    rows_dim = query.by[0]
    columns_dim = query.by[1] if len(query.by) > 1 else None
    row_values = _values(rows_dim, query, facts)
    column_values = _values(columns_dim, query, facts) if columns_dim else [None]
    counts = Counter(
        key
        for fact in facts
        for key in product(fact.values[rows_dim], _column_keys(fact, columns_dim))
    )
    published = suppression.protect(
        [[counts[(r, c)] for c in column_values] for r in row_values],
        min_cell,
        columns=len(column_values),
    )
    rows = []
    for index, value in enumerate(row_values):
        row: dict[str, Any] = {
            "value": value,
            "count": published.row_totals[index],
            "time_to_decision_hours": _percentiles(
                [f for f in facts if value in f.values[rows_dim]], min_cell
            ),
        }
        if columns_dim:
            row["cells"] = [
                {"value": c, "count": n}
                for c, n in zip(column_values, published.cells[index], strict=True)
            ]
        rows.append(row)
    answer: dict[str, Any] = {
        "start": query.start,
        "end": query.end,
        "by": list(query.by),
        "min_cell": min_cell,
        "counted": "mentions" if "category" in query.by else "referrals",
        "rows": rows,
        "total": published.total,
        "time_to_decision_hours": _percentiles(facts, min_cell),
    }
    if columns_dim:
        answer["column_totals"] = [
            {"value": c, "count": n}
            for c, n in zip(column_values, published.column_totals, strict=True)
        ]
    return answer


def _facts(uow: UnitOfWork, query: Query, zone: ZoneInfo) -> Iterator[Fact]:
    start = datetime.combine(query.start, time(), zone).astimezone(UTC)
    end = datetime.combine(query.end + timedelta(days=1), time(), zone).astimezone(UTC)
    in_period = (Referral.submitted_at >= start) & (Referral.submitted_at < end)
    referrals = uow.session.execute(
        select(
            Referral.id,
            Referral.submitted_at,
            Referral.district,
            Referral.categories,
            Referral.priority,
            Referral.status,
            Referral.outcome_code,
        ).where(in_period)
    ).all()
    decided: dict[uuid.UUID, datetime] = {}
    for referral_id, at in uow.session.execute(
        select(TimelineEvent.referral_id, TimelineEvent.at)
        .join(Referral, Referral.id == TimelineEvent.referral_id)
        .where(in_period, TimelineEvent.action.in_(DECISIONS))
    ):
        if referral_id not in decided or at < decided[referral_id]:
            decided[referral_id] = at
    for r in referrals:
        submitted = r.submitted_at
        hours = (decided[r.id] - submitted).total_seconds() / 3600 if r.id in decided else None
        yield Fact(
            values={
                "month": (submitted.astimezone(zone).strftime("%Y-%m"),),
                "district": (r.district or NO_DISTRICT,),
                "category": tuple(r.categories) or (Category.OTHER.value,),
                "priority": (r.priority,),
                "outcome": (_outcome(r.status, r.outcome_code),),
            },
            hours_to_decision=hours,
        )


def _column_keys(fact: Fact, dimension: str | None) -> Sequence[str | None]:
    return fact.values[dimension] if dimension else [None]


def _outcome(status: str, outcome_code: str | None) -> str:
    if status == Status.COMPLETED and outcome_code:
        return outcome_code
    return status if status in FINAL_STATUSES else OPEN


def _values(dimension: str | None, query: Query, facts: Sequence[Fact]) -> list[str]:
    """Every value a dimension may take, zeros included (districts: those counted)."""
    match dimension:
        case "month":
            return list(_months(query.start, query.end))
        case "category":
            return [c.value for c in Category]
        case "priority":
            return [p.value for p in Priority]
        case "outcome":
            return list(OUTCOMES)
        case "district":
            return sorted({v for f in facts for v in f.values["district"]})
    raise ValueError(dimension)


def _months(start: date, end: date) -> Iterator[str]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _percentiles(facts: Sequence[Fact], min_cell: int) -> dict[str, float] | None:
    hours = sorted(f.hours_to_decision for f in facts if f.hours_to_decision is not None)
    if len(hours) < min_cell:
        return None
    return {f"p{p}": round(suppression.percentile(hours, p), 1) for p in PERCENTS}
