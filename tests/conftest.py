"""Shared fixtures.

Every test that uses ``app`` runs twice: on SQLite and on PostgreSQL, each a real
database migrated with Alembic.  Each test runs inside one outer transaction that is
rolled back at the end; the app's own commits become savepoint releases inside it
(``join_transaction_mode="create_savepoint"``), so the code under test commits for
real and tests stay isolated.  Tests that need truly concurrent transactions use
``committed_database`` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, delete, event
from sqlalchemy.orm import sessionmaker

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db.engine import Database, connect
from referrals.db.models import AuditEvent, Base
from referrals.runtime import OPERATOR, Runtime
from referrals.services import seeding
from tests.support.clock import FakeClock
from tests.support.databases import postgres_database, sqlite_database
from tests.support.witness import LogCollector, Witness, audit_row_text

pytest_plugins = ["tests.support.idp_fixtures"]

BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config: pytest.Config) -> None:
    """The test suite asks for development, as README's quick start does: every CLI run
    and subprocess below inherits it.  Tests of an unset REFERRALS_ENV remove it."""
    os.environ["REFERRALS_ENV"] = "development"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.postgres_only`` tests are not generated for SQLite at all."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("database_url") == "sqlite"
        (dropped if on_sqlite and item.get_closest_marker("postgres_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield url
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def engine_database(database_url: str) -> Iterator[Database]:
    database = connect(database_url)
    yield database
    database.dispose()


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def db_connection(engine_database: Database) -> Iterator[Connection]:
    with engine_database.engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def database(engine_database: Database, db_connection: Connection) -> Database:
    sessions = sessionmaker(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return Database(engine=engine_database.engine, sessions=sessions)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "instance"


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path)


def seed_units(app: Flask) -> None:
    runtime: Runtime = app.extensions["referrals"]
    with runtime.unit_of_work() as uow:
        seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))


@pytest.fixture(scope="session")
def witness() -> Iterator[Witness]:
    """Collects for the whole session; fails the run if a secret reached audit or logs."""
    watcher = Witness()
    handler = LogCollector(watcher)
    logger = logging.getLogger("referrals")
    logger.addHandler(handler)

    def on_cursor_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        # What reaches the driver, however it was built (Core, or the recorder's statement
        # compiled once): every INSERT into the trail is seen.
        if (
            statement.lstrip()
            .upper()
            .startswith(f"INSERT INTO {AuditEvent.__tablename__.upper()} ")
        ):
            watcher.audit_rows.append(audit_row_text(parameters))

    event.listen(Engine, "before_cursor_execute", on_cursor_execute)
    yield watcher
    event.remove(Engine, "before_cursor_execute", on_cursor_execute)
    logger.removeHandler(handler)
    assert watcher.audit_rows, "the witness saw no audit event at all"
    assert watcher.leaks() == [], "personal data or tokens reached the audit trail or logs"


@pytest.fixture
def app(settings: Settings, database: Database, clock: FakeClock, witness: Witness) -> Flask:
    app = create_app(settings, database=database, clock=clock)
    witness.watch(app)
    seed_units(app)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dev_token(instance_path: Path, settings: Settings) -> Callable[..., str]:
    """Mint a development token: ``dev_token("caseworker", "norrmalm")``; ``subject``
    names a person (default: one per role and unit)."""

    def mint(role: str, unit: str | None = None, subject: str | None = None) -> str:
        key = devissuer.load_or_create_key(instance_path)
        return devissuer.mint(
            key, role=Role(role), unit=unit, audience=settings.oidc_audience, subject=subject
        )

    return mint


@pytest.fixture
def committed_database(engine_database: Database) -> Iterator[Database]:
    """The real engine, real commits: for concurrency tests.  Emptied afterwards."""
    yield engine_database
    with engine_database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The audit tables refuse DELETE by trigger; a superuser's test cleanup may
            # switch triggers off for its own session.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture
def live_app(settings: Settings, committed_database: Database, clock: FakeClock) -> Flask:
    """The app on the real engine (real commits, emptied afterwards) with the demo units:
    for concurrent requests and for processes that work beside the app."""
    app = create_app(settings, database=committed_database, clock=clock)
    seed_units(app)
    return app
