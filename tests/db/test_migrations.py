"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, String, column, create_engine, insert, inspect, select, table

from referrals.db.base import UTCDateTime
from referrals.db.engine import Database, connect
from referrals.db.migrate import upgrade
from referrals.db.models import Base, RoutingRuleSet
from referrals.domain.routing import Rule, validate
from tests.support.databases import empty_postgres_database


def test_migrated_schema_matches_the_models(engine_database: Database) -> None:
    with engine_database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_constraint_names_follow_the_naming_convention(engine_database: Database) -> None:
    inspector = inspect(engine_database.engine)
    assert inspector.get_pk_constraint("referrals")["name"] == "pk_referrals"
    foreign_keys = {fk["name"] for fk in inspector.get_foreign_keys("referrals")}
    assert foreign_keys == {
        "fk_referrals_sending_unit_id_units",
        "fk_referrals_receiving_unit_id_units",
    }


# The units table as revision 0003 left it (the model has columns added since).
UNITS_0003 = table(
    "units",
    column("id", String()),
    column("name", String()),
    column("kind", String()),
    column("districts", JSON()),
    column("webhook_url", String()),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'before-0004.sqlite3'}"
    else:
        with empty_postgres_database() as url:
            yield url


def test_0004_keeps_an_existing_deployment_routing_as_before(blank_url: str) -> None:
    """Before 0004 the code routed by each receiver's districts (first unit by id) and sent
    the rest to ``intake``; after it, rule-set version 1 says exactly that."""
    upgrade(blank_url, "0003")
    now = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    units = [
        ("city", "receiver", ["norrmalm", "vasastan"]),
        ("intake", "receiver", []),
        ("norrmalm", "receiver", ["norrmalm", "ostermalm"]),  # norrmalm: city came first
        ("outreach", "referrer", []),
        ("sodermalm", "receiver", ["sodermalm"]),
    ]
    engine = create_engine(blank_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(UNITS_0003),
                [
                    {
                        "id": i,
                        "name": i,
                        "kind": k,
                        "districts": d,
                        "webhook_url": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, k, d in units
                ],
            )
    finally:
        engine.dispose()
    upgrade(blank_url, "head")

    database = connect(blank_url)
    try:
        with database.sessions() as session:
            stored = session.scalars(select(RoutingRuleSet)).all()
    finally:
        database.dispose()
    assert [s.version for s in stored] == [1]
    rules = [(r["position"], r["unit"], r["match"]) for r in stored[0].rules]
    assert rules == [
        (10, "city", {"districts": ["norrmalm", "vasastan"]}),
        (20, "norrmalm", {"districts": ["ostermalm"]}),
        (30, "sodermalm", {"districts": ["sodermalm"]}),
        (100_000, "intake", {}),
    ]
    validate(
        [Rule.from_json(r) for r in stored[0].rules], ["city", "intake", "norrmalm", "sodermalm"]
    )


def test_0004_makes_no_rules_without_an_intake_unit(blank_url: str) -> None:
    upgrade(blank_url, "head")
    database = connect(blank_url)
    try:
        with database.sessions() as session:
            assert session.scalars(select(RoutingRuleSet)).all() == []
    finally:
        database.dispose()
