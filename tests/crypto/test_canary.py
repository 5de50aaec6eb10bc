"""Canary test: no sensitive value reaches raw storage, in any encoding tried.

Referrals are created and driven through their lifecycle over the API with a distinctive
made-up value in every sensitive field (README: Referral states) and then the raw database
is read: every cell of every table with plain SQL, on SQLite and PostgreSQL; on PostgreSQL also the
output of ``pg_dump`` and the tables' files on disk, on SQLite the database file itself.
The API must still return every value, so the test also fails if encryption dropped data.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, select, text
from sqlalchemy.engine import make_url

from referrals import create_app
from referrals.config import Settings
from referrals.db.base import Base
from referrals.db.engine import Database, connect
from referrals.services.records import CASE_FIELDS
from tests.api.helpers import Actors, create, forbid_server_errors
from tests.conftest import seed_units
from tests.crypto.canary import (
    Canaries,
    Scenario,
    find,
    populate,
    read_back,
    scan_database,
)
from tests.support.clock import FakeClock
from tests.support.databases import sqlite_database

REFERRALS_TABLE = Base.metadata.tables["referrals"]
NOTES_TABLE = Base.metadata.tables["notes"]
EVENTS_TABLE = Base.metadata.tables["timeline_events"]
UNITS_TABLE = Base.metadata.tables["units"]
# A bytea value in pg_dump's COPY text: \\x and hex digits.
BYTEA = re.compile(rb"\\\\x((?:[0-9a-f]{2})+)")


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


@pytest.fixture
def guarded_app(app: Flask) -> Iterator[Flask]:
    """The app, failing the test on any 5xx it answers."""
    seen = forbid_server_errors(app)
    yield app
    assert seen == []


def assert_api_returns_everything(client: FlaskClient, actors: Actors, scenario: Scenario) -> None:
    seen = read_back(client, actors, scenario)
    missing = sorted(scenario.returned - seen)
    assert missing == [], f"the API no longer returns: {missing}"
    overwritten = set(scenario.canaries.values.values()) - scenario.returned
    assert overwritten
    assert overwritten.isdisjoint(seen)


def as_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def assert_ciphertext_stored(connection: Connection, scenario: Scenario) -> None:
    """The sealed columns really hold something, so a clean scan is not a vacuous one."""
    alfa = connection.execute(
        select(REFERRALS_TABLE).where(REFERRALS_TABLE.c.id == as_uuid(scenario.ids["Alfa"]))
    ).one()
    for name in (*CASE_FIELDS, "dek_wrapped", "personal_number_index"):
        assert getattr(alfa, name), name
    notes = connection.execute(
        select(NOTES_TABLE.c.text).where(NOTES_TABLE.c.referral_id == as_uuid(scenario.ids["Alfa"]))
    ).all()
    assert len(notes) == 4
    assert all(bytes(note.text) for note in notes)
    texts = connection.execute(
        select(EVENTS_TABLE.c.reason_text).where(EVENTS_TABLE.c.reason_text.is_not(None))
    ).all()
    reason_texts = [v for v in scenario.canaries.values if v.endswith("reason text")]
    assert len(texts) == len(reason_texts) == 6


# --- the scanner itself -------------------------------------------------------------------


def test_scanner_finds_each_encoding_of_a_value_embedded_in_other_data() -> None:
    canaries = Canaries()
    value = canaries.add("name", "Plantad Kanariefågel Örnsköld")
    number = canaries.add_personal_number("number", "201207234170")
    raw = value.encode()
    noise = secrets.token_bytes(7)
    leaks = {
        "utf-8": noise + raw + noise,
        "hex": (noise + raw).hex().encode(),
        "HEX": (noise + raw).hex().upper().encode(),
        "json": json.dumps({"x": value}).encode(),
        "latin-1": noise + value.encode("latin-1"),
        "utf-16": value.encode("utf-16-le"),
        "10-digit dashed": b"pn=120723-4170;",
        "int64": noise + int(number).to_bytes(8, "little"),
    }
    for prefix in range(3):
        for suffix in range(3):
            blob = b"p" * prefix + raw + b"s" * suffix
            leaks[f"base64 {prefix}/{suffix}"] = b"[" + base64.b64encode(blob) + b"]"
            urlsafe = base64.urlsafe_b64encode(blob).rstrip(b"=")
            leaks[f"base64url unpadded {prefix}/{suffix}"] = urlsafe
    missed = [name for name, blob in leaks.items() if not find(blob, canaries.needles)]
    assert missed == []
    # ...and nothing in random data of a realistic size.
    assert find(secrets.token_bytes(64 * 1024), canaries.needles) == []


def test_scanner_reads_bytes_and_text_columns(
    client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    canaries = Canaries()
    in_bytes = canaries.add("planted in a bytes column", "Plantad Kanariefågel Örnsköld")
    in_text = canaries.add("planted in a text column", "Plantad Rödhake Vittermark")
    referral_id = as_uuid(create(client, actors.worker)["id"])
    assert scan_database(db_connection, canaries.needles) == []

    db_connection.execute(
        REFERRALS_TABLE.update()
        .where(REFERRALS_TABLE.c.id == referral_id)
        .values(narrative=b"\x01\x05" + in_bytes.encode())
    )
    db_connection.execute(
        UNITS_TABLE.update()
        .where(UNITS_TABLE.c.id == "intake")
        .values(name=in_text.encode().hex().upper())
    )
    hits = scan_database(db_connection, canaries.needles)
    assert "referrals.narrative: planted in a bytes column as utf-8" in hits
    assert "units.name: planted in a text column as HEX" in hits


# --- the canary tests -----------------------------------------------------------------


def test_no_canary_in_any_table_or_column(
    guarded_app: Flask, client: FlaskClient, actors: Actors, db_connection: Connection
) -> None:
    scenario = populate(client, actors)
    assert_api_returns_everything(client, actors, scenario)
    assert_ciphertext_stored(db_connection, scenario)
    assert scan_database(db_connection, scenario.canaries.needles) == []


@pytest.fixture
def live_client(
    settings: Settings, committed_database: Database, clock: FakeClock
) -> Iterator[FlaskClient]:
    """A client of an app whose writes are committed for real (tables emptied afterwards)."""
    app = create_app(settings, database=committed_database, clock=clock)
    seed_units(app)
    seen = forbid_server_errors(app)
    yield app.test_client()
    assert seen == []


@pytest.mark.postgres_only
def test_pg_dump_holds_no_canary(
    live_client: FlaskClient, actors: Actors, committed_database: Database, database_url: str
) -> None:
    scenario = populate(live_client, actors)
    assert_api_returns_everything(live_client, actors, scenario)

    url = make_url(database_url)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    dump = subprocess.run(
        [
            "pg_dump",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "--no-password",
            str(url.database),
        ],
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert dump.returncode == 0, dump.stderr.decode(errors="replace")
    # The dump holds the committed referrals (not a vacuous scan) ...
    for referral_id in scenario.ids.values():
        assert referral_id.encode() in dump.stdout
    assert b"COPY public.notes" in dump.stdout
    # ... and none of their personal values, in the dump's text or inside its bytea values.
    assert find(dump.stdout, scenario.canaries.needles) == []
    byteas = [bytes.fromhex(m.decode()) for m in BYTEA.findall(dump.stdout)]
    assert len(byteas) >= len(scenario.ids)  # at least the wrapped data keys
    assert [hit for blob in byteas for hit in find(blob, scenario.canaries.needles)] == []
    with committed_database.engine.connect() as connection:
        assert scan_database(connection, scenario.canaries.needles) == []


@pytest.mark.postgres_only
def test_postgres_table_files_hold_no_canary(
    live_client: FlaskClient, actors: Actors, committed_database: Database
) -> None:
    """What a copy of the data directory (a base backup on the wrong disk) would show."""
    scenario = populate(live_client, actors)
    with committed_database.engine.connect() as connection:
        if not connection.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar():
            pytest.skip("reading table files needs a superuser")
        connection.execute(text("CHECKPOINT"))
        files = relation_files(connection)
        assert "referrals" in files
        hits = []
        for relation, path in files.items():
            data = connection.execute(
                text("SELECT pg_read_binary_file(:p)"), {"p": path}
            ).scalar_one()
            hits += [
                f"{relation}: {label}" for label in find(bytes(data), scenario.canaries.needles)
            ]
        found_ids = connection.execute(text("SELECT count(*) FROM referrals")).scalar()
    assert found_ids == len(scenario.ids)
    assert hits == []


def relation_files(connection: Connection) -> dict[str, str]:
    """Heap, TOAST and index files of every relation in the public schema."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c "
            "WHERE (c.relnamespace = 'public'::regnamespace "
            "   OR c.oid IN (SELECT reltoastrelid FROM pg_class "
            "                WHERE relnamespace = 'public'::regnamespace) "
            "   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN "
            "                (SELECT reltoastrelid FROM pg_class "
            "                 WHERE relnamespace = 'public'::regnamespace))) "
            "AND pg_relation_filepath(c.oid) IS NOT NULL"
        )
    ).all()
    return {name: path for name, path in rows}


def test_sqlite_database_file_holds_no_canary(
    tmp_path: Path, settings: Settings, actors: Actors, clock: FakeClock
) -> None:
    """On SQLite the database file is the dump: scan its bytes, free pages included."""
    with sqlite_database(tmp_path) as url:
        database = connect(url)
        try:
            app = create_app(settings, database=database, clock=clock)
            seed_units(app)
            seen = forbid_server_errors(app)
            client = app.test_client()
            scenario = populate(client, actors)
            assert_api_returns_everything(client, actors, scenario)
            assert seen == []
        finally:
            database.dispose()
        path = Path(make_url(url).database or "")
        with sqlite3.connect(path) as check:
            assert check.execute("SELECT count(*) FROM referrals").fetchone() == (
                len(scenario.ids),
            )
        check.close()
        hits = []
        for file in sorted(tmp_path.iterdir()):
            hits += [
                f"{file.name}: {label}"
                for label in find(file.read_bytes(), scenario.canaries.needles)
            ]
        assert hits == []
