"""Run the Alembic migrations in ``migrations/`` against a database URL."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text


def migrations_path() -> Path:
    """The source checkout's ``migrations/``; a container sets REFERRALS_MIGRATIONS_PATH."""
    configured = os.environ.get("REFERRALS_MIGRATIONS_PATH")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    # ConfigParser interpolation would mangle a "%" in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", *, vault: object = None) -> None:
    """``vault`` seals existing plaintext rows when a migration encrypts fields (0002)."""
    config = alembic_config(database_url)
    config.attributes["vault"] = vault
    command.upgrade(config, revision)
    rewrite_tables(database_url, config.attributes.get("rewrite_tables", []))


def rewrite_tables(database_url: str, tables: list[str]) -> None:
    """PostgreSQL: VACUUM FULL, so no old row version of a rewritten table stays on disk.

    (SQLite needs nothing here: the migration turns ``secure_delete`` on.)"""
    if not tables or not database_url.startswith("postgresql"):
        return
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for table in dict.fromkeys(tables):
                connection.execute(text(f'VACUUM FULL "{table}"'))
    finally:
        engine.dispose()


AUDIT_TABLES = ("audit_events", "audit_event_targets", "audit_seals", "audit_checkpoints")


def harden(
    database_url: str,
    app_role: str,
    *,
    before_commit: Callable[[Connection], None] | None = None,
) -> None:
    """Revoke UPDATE, DELETE and TRUNCATE on the audit tables from the app's role.

    The append-only trigger (revision 0003) already refuses them for every role; this
    takes the privilege away as well, so the trigger is a second wall, not the only one.
    ``before_commit`` runs in the same transaction (the command's audit event)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            role = connection.dialect.identifier_preparer.quote(app_role)
            for table in AUDIT_TABLES:
                connection.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}"))
                connection.execute(text(f"GRANT SELECT, INSERT ON {table} TO {role}"))
            if before_commit is not None:
                before_commit(connection)
    finally:
        engine.dispose()
