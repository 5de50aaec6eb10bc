"""KEK rotation end to end, as an operator runs it: the real CLI against a real instance.

Each test gets a fresh instance folder (keyring, development signing key) and a database of
its own: the default SQLite file in that folder, or a throw-away PostgreSQL database given
to the CLI through ``REFERRALS_DATABASE_URL``.  Referrals are written and read through the
HTTP API of apps built on the same instance, so a read proves the whole chain: keyring file,
wrapped data key, sealed fields.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select

import referrals.app
from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.cli import main
from referrals.config import Settings
from referrals.db.engine import Database, connect
from referrals.db.models import AuditEvent, Note, Referral, TimelineEvent
from referrals.services.records import CASE_FIELDS
from referrals.services.vault import webhook_secret_context
from tests.api.helpers import personal_number
from tests.support.databases import postgres_database
from tests.support.keys import production_keyring

REPO = Path(__file__).resolve().parents[2]
REFERRALS = "/api/v1/referrals"
SEALED = CASE_FIELDS
# Key jobs are recorded in the audit trail with the operator's reason (a ticket reference).
REASON = ("--reason", "test-rotation")
# Settings the developer's shell might carry that would point the CLI somewhere else.
_CLEARED = (
    "REFERRALS_DATABASE_URL",
    "REFERRALS_KEYRING",
    "REFERRALS_KEYRING_FILE",
    "REFERRALS_ENV",
    "REFERRALS_DEV_TOKENS",
)


# --- a deployment: instance folder + database + CLI ---------------------------------------


@dataclass
class Deployment:
    instance: Path
    database_url: str | None  # None: the default SQLite file in the instance folder
    # Every engine the CLI and the apps open, so the test can close them (PostgreSQL is
    # dropped at the end and psycopg warns about connections left open).
    databases: list[Database] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str | None]:
        env: dict[str, str | None] = dict.fromkeys(_CLEARED)
        env["REFERRALS_ENV"] = "development"
        env["REFERRALS_INSTANCE_PATH"] = str(self.instance)
        if self.database_url:
            env["REFERRALS_DATABASE_URL"] = self.database_url
        return env

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance / 'referrals.sqlite3'}"

    @property
    def keyring_file(self) -> Path:
        return self.instance / "keyring.json"

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env)

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    def refused(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code != 0, (args, result.output)
        # Refused with a message, not crashed with a traceback.
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        return result.output

    def subprocess(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update({k: v for k, v in self.env.items() if v is not None})
        return subprocess.run(  # bounded: a hung job fails the test instead of the run
            [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    def app(self) -> Flask:
        """A new app on this instance: it loads the keyring as it is now."""
        return create_app(Settings(instance_path=self.instance, database_url=self.database_url))

    def token(self, role: str, unit: str | None = None) -> dict[str, str]:
        key = devissuer.load_or_create_key(self.instance)
        minted = devissuer.mint(key, role=Role(role), unit=unit, audience="referrals-api")
        return {"Authorization": f"Bearer {minted}"}

    def rows(self, model: Any) -> dict[uuid.UUID, dict[str, Any]]:
        """Every stored row of ``model``'s table, column by column, as the database has it."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                result = connection.execute(select(model.__table__)).mappings().all()
        finally:
            engine.dispose()
        return {row["id"]: {k: _plain(v) for k, v in row.items()} for row in result}

    def usage(self) -> dict[str | None, int]:
        counts: dict[str | None, int] = {}
        for row in self.rows(Referral).values():
            counts[row["kek_id"]] = counts.get(row["kek_id"], 0) + 1
        return counts

    def connect(self, url: str, **options: Any) -> Database:
        database = connect(url, **options)
        self.databases.append(database)
        return database


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


@contextmanager
def open_deployment(backend: str, directory: Path) -> Iterator[Deployment]:
    """A migrated, seeded deployment (``db upgrade`` and ``seed demo`` through the CLI)."""
    instance = directory / "instance"
    if backend == "sqlite":
        deployment = Deployment(instance, None)
        yield from _prepared(deployment)
    else:
        with postgres_database() as url:
            deployment = Deployment(instance, url)
            yield from _prepared(deployment)


def _prepared(deployment: Deployment) -> Iterator[Deployment]:
    try:
        with mock.patch.object(referrals.app, "connect", deployment.connect):
            assert "newest revision" in deployment.ok("db", "upgrade")
            assert "5 units created" in deployment.ok("seed", "demo")
            yield deployment
    finally:
        for database in deployment.databases:
            database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


# --- referrals with every personal field --------------------------------------------------


def referral_body(i: int) -> dict[str, Any]:
    """Made-up, distinct values in every sealed field (the birth date comes from the number)."""
    return {
        "subject": {
            "name": f"Testa Påhittadsdotter {i} 🦉",
            "personal_number": personal_number(2009, 1 + i % 12, 1 + i % 28, f"{100 + i:03d}"),
            "phone": f"070-{i:03d} 00 01",
            "district": ("norrmalm", "sodermalm", "kungsholmen", "gamla-stan")[i % 4],
        },
        "guardian": {"name": f"Vårdnads Havare {i}", "phone": f"08-{i:03d} 11 22"},
        "categories": ["drugs", "school_absence"] if i % 2 else ["violence"],
        "priority": ("normal", "urgent", "acute")[i % 3],
        "legal_basis": "consent",
        "consent": {"given_by": "guardian", "given_at": "2025-01-02T10:00:00+00:00"},
        "place_met": f"Påhittade torget {i}",
        "narrative": f"Berättelse nummer {i}: träffades sent; ålder osäker. \u00a7 ✓",
        "submit": i % 2 == 0,
    }


def note_text(i: int) -> str:
    return f"Anteckning {i}: ringde hem, ingen svarade."


def decline_text(i: int) -> str | None:
    return f"Fullt just nu ({i})." if i % 4 == 0 else None


@dataclass
class Created:
    index: int
    id: str
    body: dict[str, Any]
    receiver: str | None


def create_referrals(deployment: Deployment, client: FlaskClient, numbers: range) -> list[Created]:
    """Referrals through the API; submitted ones also get a note, some a decline with text."""
    worker = deployment.token("youth_worker", "ungdomsjouren")
    made = []
    for i in numbers:
        body = referral_body(i)
        response = client.post(REFERRALS, json=body, headers=worker)
        assert response.status_code == 201, response.get_json()
        view = response.get_json()
        receiver = view["receiving_unit"]
        made.append(Created(i, view["id"], body, receiver))
        if receiver is None:
            continue
        staff = deployment.token("caseworker", receiver)
        # Disclosed to the receiving unit (two-phase disclosure), so it reads the identity.
        revealed = client.post(
            f"{REFERRALS}/{view['id']}/reveal", json={"reason_code": "known_to_unit"}, headers=staff
        )
        assert revealed.status_code == 200, revealed.get_json()
        note = client.post(
            f"{REFERRALS}/{view['id']}/notes",
            json={"text": note_text(i), "visibility": "shared"},
            headers=staff,
        )
        assert note.status_code == 201, note.get_json()
        if decline_text(i):
            declined = client.post(
                f"{REFERRALS}/{view['id']}/decline",
                json={"reason_code": "no_capacity", "reason_text": decline_text(i)},
                headers=staff,
            )
            assert declined.status_code == 200, declined.get_json()
    return made


def read_back(deployment: Deployment, client: FlaskClient, made: Created) -> dict[str, Any]:
    """Everything each side can read of one referral, with the ETag."""
    worker = deployment.token("youth_worker", "ungdomsjouren")
    seen: dict[str, Any] = {}
    sides = [("sender", worker)]
    if made.receiver:
        sides.append(("receiver", deployment.token("caseworker", made.receiver)))
    for side, headers in sides:
        response = client.get(f"{REFERRALS}/{made.id}", headers=headers)
        assert response.status_code == 200, (made.id, response.get_json())
        seen[side] = response.get_json()
        seen[f"{side} etag"] = response.headers["ETag"]
        for part in ("events", "notes"):
            listed = client.get(f"{REFERRALS}/{made.id}/{part}", headers=headers)
            assert listed.status_code == 200, listed.get_json()
            seen[f"{side} {part}"] = listed.get_json()["items"]
    return seen


def assert_exact(seen: dict[str, Any], made: Created) -> None:
    """The plaintext read back is exactly what was sent."""
    body, view = made.body, seen["sender"]
    subject = body["subject"]
    assert view["subject"]["name"] == subject["name"]
    assert view["subject"]["personal_number"] == subject["personal_number"]
    number = subject["personal_number"]
    assert view["subject"]["birth_date"] == f"{number[:4]}-{number[4:6]}-{number[6:8]}"
    assert view["subject"]["phone"] == subject["phone"]
    assert view["guardian"] == body["guardian"]
    assert view["place_met"] == body["place_met"]
    assert view["narrative"] == body["narrative"]
    assert view["erased"] is False
    if made.receiver is None:
        assert [e["action"] for e in seen["sender events"]] == ["create"]
        assert seen["sender notes"] == []
        return
    assert seen["receiver"]["subject"]["name"] == subject["name"]
    assert seen["receiver"]["narrative"] == body["narrative"]
    for side in ("sender", "receiver"):
        assert [n["text"] for n in seen[f"{side} notes"]] == [note_text(made.index)]
        texts = [e["reason_text"] for e in seen[f"{side} events"] if e["reason_text"]]
        assert texts == ([decline_text(made.index)] if decline_text(made.index) else [])


def read_everything(deployment: Deployment, made: list[Created]) -> dict[str, dict[str, Any]]:
    """Every referral read through a NEW app, which loads the keyring from the file."""
    client = deployment.app().test_client()
    return {m.id: read_back(deployment, client, m) for m in made}


def status_lines(deployment: Deployment) -> list[str]:
    return deployment.ok("keys", "status").splitlines()


REWRAP_DONE = "data keys and webhook secrets now sealed by kek-2; 0 left under older KEKs"


def rewrap(deployment: Deployment) -> str:
    """``keys rewrap``: the progress bar's label, then the summary line."""
    output = deployment.ok("keys", "rewrap", *REASON)
    assert output.splitlines() == ["rewrapping data keys", REWRAP_DONE], output
    return output


# --- tests ----------------------------------------------------------------------------------


def test_rotate_rewrap_retire_end_to_end(deployment: Deployment) -> None:
    app = deployment.app()
    first = create_referrals(deployment, app.test_client(), range(20))
    assert status_lines(deployment) == ["kek-1\tcurrent\t20 referrals\t0 webhook secrets"]

    rotated = deployment.ok("keys", "rotate", *REASON)
    assert "kek-2 is now current" in rotated
    second = create_referrals(deployment, deployment.app().test_client(), range(20, 30))
    made = first + second
    assert deployment.usage() == {"kek-1": 20, "kek-2": 10}
    assert status_lines(deployment) == [
        "kek-1\tretained\t20 referrals\t0 webhook secrets",
        "kek-2\tcurrent\t10 referrals\t0 webhook secrets",
    ]

    # Retiring a KEK that still wraps data keys would make them unreadable: refused, and the
    # keyring file is left exactly as it was.
    keyring_before = deployment.keyring_file.read_bytes()
    refused = deployment.refused("keys", "retire", "kek-1", *REASON)
    assert "kek-1 still wraps 20 data keys" in refused
    assert deployment.keyring_file.read_bytes() == keyring_before

    before = read_everything(deployment, made)
    for m in made:
        assert_exact(before[m.id], m)
    raw_before = {model: deployment.rows(model) for model in (Referral, Note, TimelineEvent)}

    rewrap(deployment)
    assert status_lines(deployment) == [
        "kek-1\tretained\t0 referrals\t0 webhook secrets",
        "kek-2\tcurrent\t30 referrals\t0 webhook secrets",
    ]

    # Only the wrapped data keys moved: no sealed field, version (ETag) or timestamp changed,
    # and the data keys already under kek-2 were not touched at all.
    raw_after = {model: deployment.rows(model) for model in (Referral, Note, TimelineEvent)}
    assert raw_after[Note] == raw_before[Note]
    assert raw_after[TimelineEvent] == raw_before[TimelineEvent]
    assert raw_after[Referral].keys() == raw_before[Referral].keys()
    moved = 0
    for referral_id, old in raw_before[Referral].items():
        new = raw_after[Referral][referral_id]
        assert new["kek_id"] == "kek-2"
        unchanged = {k: v for k, v in new.items() if k not in {"dek_wrapped", "kek_id"}}
        assert unchanged == {k: v for k, v in old.items() if k not in {"dek_wrapped", "kek_id"}}
        assert all(new[name] is not None for name in SEALED)
        if old["kek_id"] == "kek-1":
            assert new["dek_wrapped"] != old["dek_wrapped"]
            moved += 1
        else:
            assert new["dek_wrapped"] == old["dek_wrapped"]
    assert moved == 20

    # Running it again finds nothing to do.
    rewrap(deployment)
    assert deployment.rows(Referral) == raw_after[Referral]

    assert deployment.ok("keys", "retire", "kek-1", *REASON).strip() == "kek-1 retired"
    assert status_lines(deployment) == ["kek-2\tcurrent\t30 referrals\t0 webhook secrets"]
    assert '"kek-1"' not in deployment.keyring_file.read_text()
    assert oct(deployment.keyring_file.stat().st_mode & 0o777) == "0o600"

    # A restarted service, without kek-1, reads every referral exactly as before: same
    # plaintext, same version and ETag, same notes and timeline.
    after = read_everything(deployment, made)
    assert after == before
    for m in made:
        assert_exact(after[m.id], m)


# Loaded in a child process: the real CLI, SIGKILLed from inside ``Vault.rewrap`` on its
# Nth call, i.e. in the middle of a batch after the previous batch has committed.
_KILLED_REWRAP = """
import os, signal, sys
from referrals.services.vault import Vault
kill_at = int(sys.argv[1])
calls = 0
original = Vault.rewrap
def rewrap(self, referral_id, wrapped):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, referral_id, wrapped)
Vault.rewrap = rewrap
from referrals.cli import main
main(["keys", "rewrap", "--batch-size", "5", "--reason", "test"])
"""


def test_an_interrupted_rewrap_resumes_and_completes(deployment: Deployment) -> None:
    made = create_referrals(deployment, deployment.app().test_client(), range(20))
    before = read_everything(deployment, made)
    raw_before = deployment.rows(Referral)
    deployment.ok("keys", "rotate", *REASON)

    # Killed while re-wrapping the 3rd data key of the second batch of 5.
    killed = deployment.subprocess("-c", _KILLED_REWRAP, "8")
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    # The first batch committed; the half-done second batch was rolled back entirely.
    assert deployment.usage() == {"kek-1": 15, "kek-2": 5}
    assert status_lines(deployment) == [
        "kek-1\tretained\t15 referrals\t0 webhook secrets",
        "kek-2\tcurrent\t5 referrals\t0 webhook secrets",
    ]
    # Meanwhile the service reads everything, whichever KEK wraps it.
    assert read_everything(deployment, made) == before

    resumed = deployment.subprocess(
        "-m", "referrals.cli", "keys", "rewrap", "--batch-size", "5", "--reason", "test"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines() == ["rewrapping data keys", REWRAP_DONE]
    assert deployment.usage() == {"kek-2": 20}

    raw_after = deployment.rows(Referral)
    for referral_id, old in raw_before.items():
        new = raw_after[referral_id]
        assert new["version"] == old["version"]
        assert all(new[name] == old[name] for name in SEALED)
        assert new["personal_number_index"] == old["personal_number_index"]

    assert deployment.ok("keys", "retire", "kek-1", *REASON).strip() == "kek-1 retired"
    after = read_everything(deployment, made)
    assert after == before
    for m in made:
        assert_exact(after[m.id], m)


def test_a_running_app_reads_rows_wrapped_by_a_kek_added_after_it_started(
    deployment: Deployment,
) -> None:
    """The Vault loads the keyring at start-up and once more on meeting an unknown KEK id."""
    started_before = deployment.app()
    old = create_referrals(deployment, started_before.test_client(), range(3))
    deployment.ok("keys", "rotate", *REASON)
    started_after = deployment.app()
    new = create_referrals(deployment, started_after.test_client(), range(3, 6))
    kek_of = {str(k): row["kek_id"] for k, row in deployment.rows(Referral).items()}
    assert {kek_of[m.id] for m in old} == {"kek-1"}
    assert {kek_of[m.id] for m in new} == {"kek-2"}

    old_client, new_client = started_before.test_client(), started_after.test_client()
    for m in new:
        assert_exact(read_back(deployment, old_client, m), m)
    for m in old:
        assert_exact(read_back(deployment, new_client, m), m)


def test_a_running_app_never_wraps_new_data_keys_under_a_retired_kek(
    deployment: Deployment,
) -> None:
    """The operator follows the procedure (rotate, rewrap, retire) while the service runs.
    Referrals the running service creates afterwards must stay readable after a restart."""
    running = deployment.app()  # loaded the keyring while kek-1 was current
    deployment.ok("keys", "rotate", *REASON)
    rewrap(deployment)
    assert deployment.ok("keys", "retire", "kek-1", *REASON).strip() == "kek-1 retired"

    made = create_referrals(deployment, running.test_client(), range(2))

    restarted = deployment.app().test_client()
    for m in made:
        assert_exact(read_back(deployment, restarted, m), m)
    assert deployment.usage() == {"kek-2": 2}


def test_keys_init_never_overwrites_a_keyring(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path / "instance", None)
    created = deployment.ok("keys", "init")
    assert str(deployment.keyring_file) in created
    assert oct(deployment.keyring_file.stat().st_mode & 0o777) == "0o600"
    original = deployment.keyring_file.read_bytes()

    refused = deployment.refused("keys", "init")
    assert "never overwritten" in refused
    assert deployment.keyring_file.read_bytes() == original
    assert oct(deployment.keyring_file.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in deployment.instance.iterdir()) == ["keyring.json"]


def test_retire_refuses_the_current_kek_and_an_unknown_one(tmp_path: Path) -> None:
    with open_deployment("sqlite", tmp_path) as deployment:
        deployment.ok("keys", "rotate", *REASON)
        original = deployment.keyring_file.read_bytes()
        assert "current and cannot be retired" in deployment.refused(
            "keys", "retire", "kek-2", *REASON
        )
        assert "not in the keyring" in deployment.refused("keys", "retire", "kek-7", *REASON)
        assert deployment.keyring_file.read_bytes() == original
        assert status_lines(deployment) == [
            "kek-1\tretained\t0 referrals\t0 webhook secrets",
            "kek-2\tcurrent\t0 referrals\t0 webhook secrets",
        ]


def test_webhook_secrets_follow_the_kek_through_rotate_rewrap_retire(
    deployment: Deployment,
) -> None:
    """A unit's webhook secret is sealed under a KEK too: retiring that KEK must wait for
    it, rewrap must move it, and afterwards the same secret still signs."""
    app = deployment.app()
    admin = deployment.token("admin")
    unit = {"name": "Norrmalm", "kind": "receiver", "districts": ["norrmalm"]}
    hook = {**unit, "webhook_url": "https://norrmalm.example.invalid/hook"}
    issued = app.test_client().put("/api/v1/units/norrmalm", json=hook, headers=admin)
    assert issued.status_code == 200
    secret = issued.json["webhook_secret"]
    assert status_lines(deployment) == ["kek-1\tcurrent\t0 referrals\t1 webhook secrets"]

    deployment.ok("keys", "rotate", *REASON)
    assert "kek-1 still wraps 1 data keys" in deployment.refused("keys", "retire", "kek-1", *REASON)
    deployment.ok("keys", "rewrap", *REASON)
    assert status_lines(deployment) == [
        "kek-1\tretained\t0 referrals\t0 webhook secrets",
        "kek-2\tcurrent\t0 referrals\t1 webhook secrets",
    ]
    deployment.ok("keys", "retire", "kek-1", *REASON)

    runtime = deployment.app().extensions["referrals"]
    with runtime.unit_of_work() as uow:
        stored = uow.units.get("norrmalm")
        assert stored is not None
        assert stored.webhook_secret is not None
        assert secret.encode() not in stored.webhook_secret
        opened = runtime.vault.open_secret(
            webhook_secret_context("norrmalm"), stored.webhook_secret
        )
    assert opened == secret


# --- keys check: does this keyring open this database? ----------------------------------


def audit_rows(deployment: Deployment) -> int:
    return len(deployment.rows(AuditEvent))


def test_keys_check_passes_with_the_databases_own_keyring_across_a_rotation(
    deployment: Deployment,
) -> None:
    with deployment.app().test_client() as client:
        create_referrals(deployment, client, range(3))
    assert "the keyring opens this database (3 keys tried)" in deployment.ok("keys", "check")
    deployment.ok("keys", "rotate", *REASON)
    with deployment.app().test_client() as client:
        create_referrals(deployment, client, range(3, 5))
    # Both KEKs in use, both held: a sample of each is unwrapped.
    assert "(5 keys tried)" in deployment.ok("keys", "check")


def test_keys_check_refuses_another_keyring_and_changes_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    with deployment.app().test_client() as client:
        create_referrals(deployment, client, range(2))
    own = deployment.keyring_file.read_text()
    before = (deployment.rows(Referral), audit_rows(deployment))
    # Another keyring with the same KEK id: the id is there, the key is not this one.
    deployment.keyring_file.write_text(production_keyring())
    deployment.keyring_file.chmod(0o600)
    refused = deployment.refused("keys", "check")
    assert "this keyring does not open this database" in refused
    assert "2 of 2 keys tried did not open" in refused
    assert "nothing was changed" in refused
    # A keyring without the database's KEK at all names it.
    deployment.keyring_file.write_text(own.replace('"kek-1"', '"kek-7"'))
    refused = deployment.refused("keys", "check")
    assert "KEK kek-1 (2 referrals or secrets) is not in the keyring" in refused
    assert (deployment.rows(Referral), audit_rows(deployment)) == before
