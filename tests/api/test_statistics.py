"""Statistics without people, over HTTP on both databases: small cells withheld with
their complements, percentiles only over big enough groups, no case content or ids, the
request audited without targets.  The suppression itself is property-tested in
tests/domain/test_suppression.py; its attacker is reused here on real answers."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.config import ConfigError, Settings
from referrals.db.engine import Database
from referrals.db.models import AuditEvent, AuditEventTarget
from referrals.domain.suppression import Published
from tests.api.helpers import PROBLEM_JSON, Actors, act, bearer, create
from tests.domain.test_suppression import recoverable
from tests.support.clock import FakeClock

STATISTICS = "/api/v1/statistics"
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
# How many referrals each district's young people got, and at what priority.
MADE = {"norrmalm": (7, "normal"), "sodermalm": (3, "urgent"), "kungsholmen": (6, "normal")}


@pytest.fixture
def analyst(dev_token: Any) -> dict[str, str]:
    return bearer(dev_token("analyst"))


@pytest.fixture
def made(client: FlaskClient, actors: Actors, clock: FakeClock) -> dict[str, list[str]]:
    """16 referrals submitted on 26 November; norrmalm's 7 accepted 1, 2, ... 7 hours later."""
    ids: dict[str, list[str]] = {}
    for district, (count, priority) in MADE.items():
        ids[district] = [
            create(
                client, actors.worker, subject={"district": district}, priority=priority,
                submit=True,
            )["id"]
            for _ in range(count)
        ]  # fmt: skip
    for rid in ids["norrmalm"]:
        clock.advance(hours=1)
        assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    return ids


def statistics(client: FlaskClient, headers: dict[str, str], **query: str) -> dict[str, Any]:
    got = client.get(STATISTICS, query_string={**NOVEMBER, **query}, headers=headers)
    assert got.status_code == 200, got.get_json()
    assert got.headers["Cache-Control"] == "no-store"
    body = got.get_json()
    assert isinstance(body, dict)
    return body


def as_published(body: dict[str, Any]) -> Published:
    """A two-way answer as the table the attacker works on."""
    return Published(
        cells=[[c["count"] for c in row["cells"]] for row in body["rows"]],
        row_totals=[row["count"] for row in body["rows"]],
        column_totals=[c["count"] for c in body["column_totals"]],
        total=body["total"],
    )


def test_a_small_district_is_withheld_with_its_complement(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    body = statistics(client, analyst, by="district")

    assert [(r["value"], r["count"]) for r in body["rows"]] == [
        ("kungsholmen", None),  # the complement: else 16 - 7 - 6 gives sodermalm's 3
        ("norrmalm", 7),
        ("sodermalm", None),
    ]
    assert body["total"] == 16
    assert (body["by"], body["min_cell"], body["counted"]) == (["district"], 5, "referrals")
    assert (body["from"], body["to"]) == ("2026-11-01", "2026-11-30")
    assert "column_totals" not in body
    assert "cells" not in body["rows"][0]


def test_time_to_decision_only_over_groups_of_at_least_the_threshold(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    body = statistics(client, analyst, by="district")

    rows = {r["value"]: r["time_to_decision_hours"] for r in body["rows"]}
    assert rows == {
        "norrmalm": {"p25": 2.0, "p50": 4.0, "p75": 6.0, "p90": 7.0},
        "kungsholmen": None,
        "sodermalm": None,
    }
    assert body["time_to_decision_hours"] == rows["norrmalm"]


def test_two_way_tables_publish_nothing_small_and_nothing_recoverable(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    for by in ("district,priority", "priority,district", "category,district", "month,outcome"):
        body = statistics(client, analyst, by=by)
        published = as_published(body)
        values = [v for row in published.cells for v in row]
        values += [*published.row_totals, *published.column_totals, published.total]
        assert [v for v in values if v is not None and 0 < v < 5] == [], by
        assert recoverable(published) == [], by
    urgent = statistics(client, analyst, by="priority,district")["rows"][1]
    assert urgent["value"] == "urgent"
    assert urgent["count"] is None  # sodermalm's 3 urgent referrals


def test_zeros_and_every_month_are_shown(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    body = statistics(client, analyst, by="month", **{"from": "2026-10-01"})
    assert [(r["value"], r["count"]) for r in body["rows"]] == [("2026-10", 0), ("2026-11", 16)]
    categories = statistics(client, analyst, by="category")
    assert categories["counted"] == "mentions"
    # Every referral names drugs and school_absence (the helpers' default body).
    counts = {r["value"]: r["count"] for r in categories["rows"]}
    assert (counts["drugs"], counts["school_absence"], categories["total"]) == (16, 16, 32)


def test_no_case_content_and_no_referral_ids_and_one_audit_event_without_targets(
    client: FlaskClient,
    analyst: dict[str, str],
    made: dict[str, list[str]],
    database: Database,
) -> None:
    got = client.get(STATISTICS, query_string={**NOVEMBER, "by": "district,outcome"},
                     headers=analyst)  # fmt: skip
    text = got.get_data(as_text=True)

    assert got.status_code == 200
    assert [i for ids in made.values() for i in ids if i in text] == []
    assert "Kim Exempelsson" not in text
    assert "Sergels torg" not in text
    with database.sessions() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "statistics:read"))
        named = session.scalars(
            select(AuditEventTarget).where(AuditEventTarget.event_id == event.id)
        ).all()
    assert (event.outcome, event.target_type, event.target_id, named) == (
        "allowed", None, None, [],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"by": "name"}, "by"),
        ({"by": "district,district"}, "by"),
        ({"by": "district,month,priority"}, "by"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "to"),
        ({"from": "2020-01-01", "to": "2026-11-01"}, "to"),
        ({"from": "1 november"}, "from"),
        ({"from": "0001-01-01", "to": "0001-12-31"}, "from"),
        ({"from": "9999-12-01", "to": "9999-12-31"}, "from"),
        ({"from": "2026-01-01", "to": "9999-12-31"}, "to"),
        ({"unit": "norrmalm"}, "unit"),
    ],
)
def test_bad_queries_are_refused_naming_the_field(
    client: FlaskClient, analyst: dict[str, str], query: dict[str, str], field: str
) -> None:
    got = client.get(STATISTICS, query_string=query, headers=analyst)
    assert got.status_code == 422, got.get_json()
    assert got.mimetype == PROBLEM_JSON
    assert [e["field"] for e in got.get_json()["errors"]] == [field]


def test_a_period_without_referrals_is_all_zeros(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    """No district was counted, so the table has no rows: its columns still add up."""
    body = statistics(client, analyst, by="district,month", **{"from": "2025-01-01",
                      "to": "2025-02-28"})  # fmt: skip
    assert body["rows"] == []
    assert body["column_totals"] == [
        {"value": "2025-01", "count": 0}, {"value": "2025-02", "count": 0},
    ]  # fmt: skip
    assert (body["total"], body["time_to_decision_hours"]) == (0, None)


def test_the_default_period_is_the_year_up_to_today(
    client: FlaskClient, analyst: dict[str, str], made: dict[str, list[str]]
) -> None:
    got = client.get(STATISTICS, headers=analyst)
    body = got.get_json()
    assert (body["from"], body["to"], body["by"]) == ("2025-11-01", "2026-11-26", ["month"])
    assert len(body["rows"]) == 13
    assert body["rows"][-1] == {
        "value": "2026-11", "count": 16,
        "time_to_decision_hours": {"p25": 2.0, "p50": 4.0, "p75": 6.0, "p90": 7.0},
    }  # fmt: skip


def test_the_threshold_is_a_setting_of_at_least_two() -> None:
    env = {"REFERRALS_ENV": "development"}
    assert Settings.from_env(env).statistics_min_cell == 5
    assert (
        Settings.from_env({**env, "REFERRALS_STATISTICS_MIN_CELL": "10"}).statistics_min_cell == 10
    )
    for bad in ("1", "0", "five", "-3"):
        with pytest.raises(ConfigError, match="REFERRALS_STATISTICS_MIN_CELL"):
            Settings.from_env({**env, "REFERRALS_STATISTICS_MIN_CELL": bad})
