"""Revision 0002 moves the plaintext rows of a revision-0001 database to ciphertext.

Each test builds a database at revision 0001 (a temporary SQLite file, or a throw-away
PostgreSQL database), writes referrals, notes and timeline events there in plaintext with
plain SQL, as the previous release stored them, and upgrades it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.crypto.keyring import KeyringFile
from referrals.db.base import UTCDateTime
from referrals.db.migrate import alembic_config, migrations_path, upgrade
from referrals.services.records import CASE_FIELDS
from referrals.services.vault import Vault
from tests.api.helpers import REFERRALS, bearer, personal_number
from tests.crypto.canary import Canaries, find, scan_database
from tests.support.databases import empty_postgres_database

# --- revision 0001's tables, as the previous release wrote them --------------------------

legacy = sa.MetaData()
UNITS = sa.Table(
    "units",
    legacy,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("kind", sa.String(40)),
    sa.Column("districts", sa.JSON()),
    sa.Column("webhook_url", sa.String(2000)),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime()),
)
PERSONAL = CASE_FIELDS
REFERRALS_0001 = sa.Table(
    "referrals",
    legacy,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("version", sa.Integer()),
    sa.Column("status", sa.String(40)),
    sa.Column("sending_unit_id", sa.String(64)),
    sa.Column("receiving_unit_id", sa.String(64)),
    sa.Column("created_by", sa.String(500)),
    sa.Column("priority", sa.String(40)),
    sa.Column("categories", sa.JSON()),
    sa.Column("legal_basis", sa.String(40)),
    sa.Column("district", sa.String(64)),
    sa.Column("age_at_submission", sa.Integer()),
    sa.Column("reason_code", sa.String(40)),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime()),
    sa.Column("submitted_at", UTCDateTime()),
    sa.Column("due_at", UTCDateTime()),
    *(sa.Column(name, sa.String()) for name in PERSONAL),
)
NOTES_0001 = sa.Table(
    "notes",
    legacy,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("referral_id", sa.Uuid()),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("author", sa.String(500)),
    sa.Column("author_unit", sa.String(64)),
    sa.Column("author_side", sa.String(40)),
    sa.Column("visibility", sa.String(40)),
    sa.Column("text", sa.String()),
)
EVENTS_0001 = sa.Table(
    "timeline_events",
    legacy,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("referral_id", sa.Uuid()),
    sa.Column("position", sa.Integer()),
    sa.Column("at", UTCDateTime()),
    sa.Column("action", sa.String(40)),
    sa.Column("actor", sa.String(500)),
    sa.Column("actor_unit", sa.String(64)),
    sa.Column("from_status", sa.String(40)),
    sa.Column("to_status", sa.String(40)),
    sa.Column("to_unit", sa.String(64)),
    sa.Column("reason_code", sa.String(40)),
    sa.Column("reason_text", sa.String()),
)

SENDER, RECEIVER = "ungdomsjouren", "norrmalm"
AT = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
DUE = datetime(2026, 10, 15, 8, 30, tzinfo=UTC)


@dataclass
class Legacy:
    """What was written in plaintext, to compare with what the upgraded app returns."""

    canaries: Canaries
    referrals: dict[uuid.UUID, dict[str, Any]]
    notes: dict[uuid.UUID, dict[str, Any]]
    events: dict[uuid.UUID, dict[str, Any]]


def legacy_referral(canaries: Canaries, tag: str, number: str, birth: str) -> dict[str, Any]:
    n = "AB".index(tag[0]) + 1
    return {
        "subject_name": canaries.add(f"{tag} subject name", f"Fribjörn {tag} Gnistrasson"),
        "personal_number": canaries.add_personal_number(f"{tag} personal number", number),
        "birth_date": canaries.add_birth_date(f"{tag} birth date", birth),
        "phone": canaries.add(f"{tag} phone", f"+46 (0)76-40{n} 19 8{n}"),
        "guardian_name": canaries.add(f"{tag} guardian name", f"Hjördis {tag} Gnistrasson"),
        "guardian_phone": canaries.add(f"{tag} guardian phone", f"+46 8-44{n} 902 1{n}"),
        "narrative": canaries.add(
            f"{tag} narrative", f"{tag} gammal berättelse: sov i trappuppgången vid Glödgränd"
        ),
        "place_met": canaries.add(f"{tag} place met", f"{tag} gammal plats: Glödgränds tunnelbana"),
    }


def write_legacy_rows(url: str) -> Legacy:
    """Two referrals with every personal field, a note on each, a decline reason text."""
    canaries = Canaries()
    first, second = uuid.uuid4(), uuid.uuid4()
    referrals = {
        first: {
            "status": "requested",
            **legacy_referral(canaries, "Alfa", personal_number(2011, 9, 3, "624"), "2011-09-03"),
        },
        second: {
            "status": "rejected",
            "reason_code": "no_capacity",
            **legacy_referral(canaries, "Bravo", personal_number(2012, 2, 29, "385"), "2012-02-29"),
        },
    }
    notes = {
        uuid.uuid4(): {
            "referral_id": referral_id,
            "text": canaries.add(f"{tag} note", f"{tag} gammal anteckning: ringde från Glödgränd"),
        }
        for referral_id, tag in ((first, "Alfa"), (second, "Bravo"))
    }
    decline = uuid.uuid4()
    reason = canaries.add("Bravo decline reason text", "Bravo gammalt skäl: redan känd hos oss")
    events = {
        decline: {
            "referral_id": second,
            "position": 3,
            "action": "decline",
            "from_status": "requested",
            "to_status": "rejected",
            "reason_code": "no_capacity",
            "reason_text": reason,
        },
    }
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                UNITS.insert(),
                [
                    {
                        "id": SENDER,
                        "name": "Ungdomsjouren",
                        "kind": "referrer",
                        "districts": [],
                        "created_at": AT,
                        "updated_at": AT,
                    },
                    {
                        "id": RECEIVER,
                        "name": "Norrmalm",
                        "kind": "receiver",
                        "districts": ["norrmalm"],
                        "created_at": AT,
                        "updated_at": AT,
                    },
                ],
            )
            for referral_id, values in referrals.items():
                connection.execute(
                    REFERRALS_0001.insert().values(
                        id=referral_id,
                        version=3,
                        sending_unit_id=SENDER,
                        receiving_unit_id=RECEIVER,
                        created_by="dev-youth_worker@ungdomsjouren",
                        priority="normal",
                        categories=["drugs", "school_absence"],
                        legal_basis="duty_to_report",
                        district="norrmalm",
                        age_at_submission=15,
                        created_at=AT,
                        updated_at=AT,
                        submitted_at=AT,
                        due_at=DUE,
                        **values,
                    )
                )
                for position, (action, from_status, to_status) in enumerate(
                    [("create", None, "draft"), ("submit", "draft", "requested")], start=1
                ):
                    connection.execute(
                        EVENTS_0001.insert().values(
                            id=uuid.uuid4(),
                            referral_id=referral_id,
                            position=position,
                            at=AT,
                            action=action,
                            actor="dev-youth_worker@ungdomsjouren",
                            actor_unit=SENDER,
                            from_status=from_status,
                            to_status=to_status,
                            to_unit=RECEIVER if to_status == "requested" else None,
                        )
                    )
            for event_id, values in events.items():
                connection.execute(
                    EVENTS_0001.insert().values(
                        id=event_id,
                        at=AT,
                        actor="dev-caseworker@norrmalm",
                        actor_unit=RECEIVER,
                        to_unit=RECEIVER,
                        **values,
                    )
                )
            for note_id, values in notes.items():
                connection.execute(
                    NOTES_0001.insert().values(
                        id=note_id,
                        created_at=AT,
                        author="dev-caseworker@norrmalm",
                        author_unit=RECEIVER,
                        author_side="receiver",
                        visibility="shared",
                        **values,
                    )
                )
    finally:
        engine.dispose()
    return Legacy(canaries=canaries, referrals=referrals, notes=notes, events=events)


# --- databases ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
    else:
        with empty_postgres_database() as url:
            yield url


@pytest.fixture
def legacy_url(empty_url: str) -> str:
    upgrade(empty_url, "0001")
    return empty_url


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "keyring.json"
    KeyringFile(path).create(development=True)
    return path


def vault_of(path: Path) -> Vault:
    return Vault(KeyringFile(path))


@contextmanager
def connection_to(url: str) -> Iterator[sa.Connection]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def head_revision() -> str:
    return str(ScriptDirectory(str(migrations_path())).get_current_head())


def revision(url: str) -> str:
    with connection_to(url) as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


def schema(url: str) -> dict[str, set[str]]:
    """Column and index names of the tables revision 0002 changes."""
    with connection_to(url) as connection:
        inspector = inspect(connection)
        return {
            table: {c["name"] for c in inspector.get_columns(table)}
            | {f"index {i['name']}" for i in inspector.get_indexes(table)}
            for table in ("referrals", "notes", "timeline_events")
        }


def plaintext_rows(url: str) -> dict[uuid.UUID, dict[str, Any]]:
    with connection_to(url) as connection:
        rows = connection.execute(sa.select(REFERRALS_0001)).mappings().all()
    return {row["id"]: {name: row[name] for name in PERSONAL} for row in rows}


@contextmanager
def app_on(url: str, keyring: Path, instance: Path) -> Iterator[Flask]:
    app = create_app(Settings(instance_path=instance, database_url=url, keyring_file=keyring))
    try:
        yield app
    finally:
        app.extensions["referrals"].database.dispose()


def sender(instance: Path) -> dict[str, str]:
    """The sending unit, which reads every field (the receiving unit reads the decision
    view of a referral it has not accepted: two-phase disclosure)."""
    key = devissuer.load_or_create_key(instance)
    token = devissuer.mint(
        key, role=Role.YOUTH_WORKER, unit=SENDER, audience=Settings().oidc_audience
    )
    return bearer(token)


def assert_app_returns_everything(
    client: FlaskClient, headers: dict[str, str], old: Legacy
) -> None:
    for referral_id, values in old.referrals.items():
        response = client.get(f"{REFERRALS}/{referral_id}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["status"] == values["status"]
        assert body["categories"] == ["drugs", "school_absence"]
        assert body["subject"]["name"] == values["subject_name"]
        assert body["subject"]["personal_number"] == values["personal_number"]
        assert body["subject"]["birth_date"] == values["birth_date"]
        assert body["subject"]["phone"] == values["phone"]
        assert body["guardian"] == {
            "name": values["guardian_name"],
            "phone": values["guardian_phone"],
        }
        assert body["narrative"] == values["narrative"]
        assert body["place_met"] == values["place_met"]
        assert body["erased"] is False

        notes = client.get(f"{REFERRALS}/{referral_id}/notes", headers=headers).get_json()
        expected_notes = {
            str(k): v["text"] for k, v in old.notes.items() if v["referral_id"] == referral_id
        }
        assert {n["id"]: n["text"] for n in notes["items"]} == expected_notes

        events = client.get(f"{REFERRALS}/{referral_id}/events", headers=headers).get_json()
        texts = {e["id"]: e["reason_text"] for e in events["items"] if e["reason_text"]}
        expected_texts = {
            str(k): v["reason_text"]
            for k, v in old.events.items()
            if v["referral_id"] == referral_id
        }
        assert texts == expected_texts
        assert len(events["items"]) == 2 + len(expected_texts)

        # The blind index was computed with the app's own index key.
        found = client.post(
            f"{REFERRALS}/search",
            json={"personal_number": values["personal_number"]},
            headers=headers,
        )
        assert [item["id"] for item in found.get_json()["items"]] == [str(referral_id)]


# --- the tests ----------------------------------------------------------------------------


def test_upgrade_seals_every_plaintext_row_without_loss(
    legacy_url: str, keyring_path: Path, tmp_path: Path
) -> None:
    old = write_legacy_rows(legacy_url)
    with connection_to(legacy_url) as connection:
        # The scanner sees the plaintext before the upgrade: the clean scan below means something.
        assert len(scan_database(connection, old.canaries.needles)) >= len(old.canaries.values)

    upgrade(legacy_url, "head", vault=vault_of(keyring_path))

    assert revision(legacy_url) == head_revision()
    with connection_to(legacy_url) as connection:
        assert scan_database(connection, old.canaries.needles) == []
        rows = connection.execute(text("SELECT * FROM referrals")).mappings().all()
        for row in rows:
            assert row["kek_id"] == "kek-1"
            assert row["dek_wrapped"]
            assert row["personal_number_index"]
            for name in PERSONAL:
                assert isinstance(row[name], bytes | memoryview), name
    instance = tmp_path / "instance"
    with app_on(legacy_url, keyring_path, instance) as app:
        assert_app_returns_everything(app.test_client(), sender(instance), old)


def test_upgrade_without_keys_fails_clearly_and_keeps_the_plaintext(legacy_url: str) -> None:
    old = write_legacy_rows(legacy_url)
    with pytest.raises(
        RuntimeError,
        match="existing referrals must be encrypted: run this upgrade with `referrals db upgrade`",
    ):
        upgrade(legacy_url, "head")
    assert revision(legacy_url) == "0001"
    assert plaintext_rows(legacy_url) == {
        referral_id: {name: values[name] for name in PERSONAL}
        for referral_id, values in old.referrals.items()
    }


def test_upgrade_without_keys_leaves_the_schema_at_0001_so_it_can_be_retried(
    legacy_url: str, keyring_path: Path, tmp_path: Path
) -> None:
    """A refused upgrade must not leave a half-migrated schema that the retry, now with
    the keys, trips over.  PostgreSQL rolls the DDL back; SQLite must be made to."""
    old = write_legacy_rows(legacy_url)
    before = schema(legacy_url)
    with pytest.raises(RuntimeError):
        upgrade(legacy_url, "head")
    after = schema(legacy_url)
    added = {table: sorted(after[table] - before[table]) for table in before}
    assert added == {"referrals": [], "notes": [], "timeline_events": []}
    assert after == before

    upgrade(legacy_url, "head", vault=vault_of(keyring_path))
    instance = tmp_path / "instance"
    with app_on(legacy_url, keyring_path, instance) as app:
        assert_app_returns_everything(app.test_client(), sender(instance), old)


def test_downgrade_from_head_is_refused_and_changes_nothing(
    legacy_url: str, keyring_path: Path, tmp_path: Path
) -> None:
    old = write_legacy_rows(legacy_url)
    upgrade(legacy_url, "head", vault=vault_of(keyring_path))
    for target in ("0001", "base"):
        with pytest.raises(NotImplementedError, match="not reversible"):
            command.downgrade(alembic_config(legacy_url), target)
        assert revision(legacy_url) == head_revision()
    with connection_to(legacy_url) as connection:
        assert scan_database(connection, old.canaries.needles) == []
    instance = tmp_path / "instance"
    with app_on(legacy_url, keyring_path, instance) as app:
        assert_app_returns_everything(app.test_client(), sender(instance), old)


def test_upgrade_of_an_empty_0001_database_needs_no_keys(empty_url: str) -> None:
    upgrade(empty_url, "0001")
    upgrade(empty_url, "head")
    assert revision(empty_url) == head_revision()


# --- below SQL: what a copy of the files would hold ----------------------------------------


@pytest.fixture
def sqlite_without_secure_delete() -> Iterator[None]:
    """Upstream SQLite's default: freed pages keep their old bytes.  (Debian's build turns
    SECURE_DELETE on, which hides the problem on this machine but not on every platform.)"""

    def off(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA secure_delete = OFF")

    event.listen(Engine, "connect", off)
    yield
    event.remove(Engine, "connect", off)


def test_sqlite_file_holds_no_plaintext_after_upgrade(
    tmp_path: Path, keyring_path: Path, sqlite_without_secure_delete: None
) -> None:
    """The SQLite file is what gets copied to a backup: after the upgrade no byte of it,
    free pages included, may hold a value that was plaintext before."""
    path = tmp_path / "legacy.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url, "0001")
    old = write_legacy_rows(url)
    assert find(path.read_bytes(), old.canaries.needles)  # the scan can see them

    upgrade(url, "head", vault=vault_of(keyring_path))

    with connection_to(url) as connection:
        assert scan_database(connection, old.canaries.needles) == []
    leftovers = [
        f"{f.name}: {label}"
        for f in tmp_path.glob("legacy.sqlite3*")
        for label in find(f.read_bytes(), old.canaries.needles)
    ]
    assert leftovers == []


def test_postgres_table_files_hold_no_plaintext_after_upgrade(keyring_path: Path) -> None:
    """A base backup or a copy of the data directory taken after the upgrade must not hold
    the old plaintext: not in dead row versions, not in dropped columns."""
    with empty_postgres_database() as url:
        upgrade(url, "0001")
        old = write_legacy_rows(url)
        upgrade(url, "head", vault=vault_of(keyring_path))
        with connection_to(url) as connection:
            superuser = connection.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
            if not superuser:
                pytest.skip("reading table files needs a superuser")
            assert scan_database(connection, old.canaries.needles) == []
            connection.execute(text("CHECKPOINT"))
            hits = []
            for table in ("referrals", "notes", "timeline_events"):
                path = connection.execute(
                    text("SELECT pg_relation_filepath(:t)"), {"t": table}
                ).scalar()
                data = connection.execute(
                    text("SELECT pg_read_binary_file(:p)"), {"p": path}
                ).scalar_one()
                hits += [f"{table}: {label}" for label in find(bytes(data), old.canaries.needles)]
    assert hits == []
