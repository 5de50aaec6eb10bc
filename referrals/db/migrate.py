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
# Written by the application: the events and the referrals each one disclosed.
EVENT_TABLES = ("audit_events", "audit_event_targets")
# Written by the sealer only: the chain positions and the signed checkpoints.
SEALER_TABLES = ("audit_seals", "audit_checkpoints")
# Refusals of unverified actors, counted per minute (revision 0006).
TALLIES = "audit_refusal_tallies"
# The sealer's queue of unsealed events (revision 0011): the app's trigger adds, the
# sealer reads and removes.
PENDING = "audit_pending"


def harden(
    database_url: str,
    app_role: str,
    *,
    sealer_role: str,
    before_commit: Callable[[Connection], object] | None = None,
) -> None:
    """Separate the duties on the audit tables (run as the migration owner).

    The app role may INSERT and SELECT events (and the referrals they disclosed) and only
    read seals and checkpoints; the sealer role may read events and INSERT seals and
    checkpoints, and read and remove entries of its queue (``audit_pending``, which the
    app may only add to), and nothing else in the database.  The append-only trigger (revision 0003)
    refuses UPDATE, DELETE and TRUNCATE for every role; taking the privileges away as well
    makes it a second wall.  ``before_commit`` runs in the same transaction (the command's
    audit event)."""
    if app_role == sealer_role:
        raise ValueError("the sealer needs a role of its own, not the app's")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            quote = connection.dialect.identifier_preparer.quote
            app, sealer = quote(app_role), quote(sealer_role)
            for table in AUDIT_TABLES:
                connection.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {app}"))
                connection.execute(text(f"GRANT SELECT ON {table} TO {app}"))
            # Refusal counts only grow: the app adds rows and counts, never removes them.
            connection.execute(text(f"REVOKE DELETE, TRUNCATE ON {TALLIES} FROM {app}"))
            connection.execute(text(f"GRANT SELECT, INSERT, UPDATE ON {TALLIES} TO {app}"))
            connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {sealer}"))
            for table in EVENT_TABLES:
                connection.execute(text(f"GRANT INSERT ON {table} TO {app}"))
                # The sealer hashes an event with the referrals it disclosed.
                connection.execute(text(f"GRANT SELECT ON {table} TO {sealer}"))
            for table in SEALER_TABLES:
                connection.execute(text(f"REVOKE INSERT ON {table} FROM {app}"))
                connection.execute(text(f"GRANT SELECT, INSERT ON {table} TO {sealer}"))
            # The trigger on audit_events runs as the app: it may add to the queue only.
            connection.execute(
                text(f"REVOKE SELECT, UPDATE, DELETE, TRUNCATE ON {PENDING} FROM {app}")
            )
            connection.execute(text(f"GRANT INSERT ON {PENDING} TO {app}"))
            connection.execute(text(f"GRANT SELECT, DELETE ON {PENDING} TO {sealer}"))
            if before_commit is not None:
                before_commit(connection)
    finally:
        engine.dispose()
