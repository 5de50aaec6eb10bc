"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from referrals.db.engine import Database
from referrals.db.models import Base


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
