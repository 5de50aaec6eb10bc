"""Alembic environment.  The database URL comes from ``referrals db upgrade`` (the
app's settings) or, for a bare ``alembic`` call, from REFERRALS_DATABASE_URL."""

from typing import Any

from alembic import context
from sqlalchemy import Engine, engine_from_config, event, pool

from referrals.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        _transactional_ddl(engine)
    with engine.connect() as connection:
        _run(connection, sqlite_begins=sqlite)


def _transactional_ddl(engine: Engine) -> None:
    """pysqlite runs DDL outside any transaction, so a migration run that fails half-way
    (a downgrade reaching an irreversible revision) would leave the steps before it done.
    SQLAlchemy's recipe: let SQLite itself see BEGIN, so the whole run rolls back."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def _run(connection: object, *, sqlite_begins: bool = False) -> None:
    # Batch mode lets ALTER TABLE migrations run on SQLite as well.  Alembic assumes DDL
    # cannot be transactional on SQLite and commits after each revision; with the BEGIN
    # of ``_transactional_ddl`` it can, so a run that fails half-way (a downgrade meeting
    # an irreversible revision) rolls back whole.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        transactional_ddl=True if sqlite_begins else None,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
