"""Real test databases: a temporary SQLite file, and a throw-away PostgreSQL database.

PostgreSQL is found at REFERRALS_TEST_POSTGRES_URL (default: the local server with trust
auth).  When it cannot be reached the PostgreSQL half of the suite is skipped locally but
fails in CI (``CI=true``): a green CI run must have exercised both databases.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from referrals.db.migrate import upgrade

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("REFERRALS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'test.sqlite3'}"
    upgrade(url)
    yield url


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database migrated to the newest revision."""
    with empty_postgres_database() as url:
        upgrade(url)
        yield url


@contextmanager
def empty_postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database with no schema at all, dropped afterwards."""
    admin_url = make_url(postgres_admin_url())
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {admin_url.render_as_string()}: {exc.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    name = f"referrals_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
