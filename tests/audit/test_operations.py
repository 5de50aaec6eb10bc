"""Operator commands on the audit trail: export, and hardening the app role."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.cli import main
from referrals.config import Settings
from referrals.db.migrate import harden
from tests.support.databases import postgres_database


def test_export_writes_one_json_line_per_event_with_its_chain_position(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {"REFERRALS_ENV": "development", "REFERRALS_INSTANCE_PATH": str(instance)}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    assert runner.invoke(main, ["seed", "demo"], env=env).exit_code == 0
    app = create_app(Settings(instance_path=instance))
    token = devissuer.mint(
        devissuer.load_or_create_key(instance),
        role=Role.YOUTH_WORKER,
        unit="ungdomsjouren",
        audience="referrals-api",
    )
    client = app.test_client()
    for _ in range(3):
        client.get("/api/v1/referrals", headers={"Authorization": f"Bearer {token}"})
    assert runner.invoke(main, ["audit", "seal"], env=env).exit_code == 0
    client.get("/api/v1/referrals")  # one more, not yet sealed
    out = tmp_path / "audit.jsonl"
    result = runner.invoke(main, ["audit", "export", "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # The operator's `db upgrade` and `seed demo` are in the trail too, first.
    assert [line["action"] for line in lines[:2]] == ["db:upgrade", "seed:apply"]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, None]
    assert [line["http_status"] for line in lines] == [200, 200, 200, 200, 200, 401]
    assert all(len(line["hash"]) == 64 for line in lines[:5])
    assert token not in out.read_text()


@pytest.fixture
def roles() -> Iterator[tuple[str, str, str]]:
    """A throw-away PostgreSQL database and login roles for the app and the sealer, all
    removed after.  The owner of the database is the migration owner."""
    with postgres_database() as url:
        suffix = secrets.token_hex(4)
        app, sealer = f"referrals_app_{suffix}", f"referrals_sealer_{suffix}"
        owner = create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            for role in (app, sealer):
                connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                # Everything a careless deployment would grant; harden must take it back.
                grant = "GRANT INSERT, UPDATE, DELETE, SELECT ON ALL TABLES IN SCHEMA public"
                connection.execute(text(f'{grant} TO "{role}"'))
        try:
            yield url, app, sealer
        finally:
            with owner.connect() as connection:
                for role in (app, sealer):
                    connection.execute(text(f'DROP OWNED BY "{role}"'))
                    connection.execute(text(f'DROP ROLE "{role}"'))
            owner.dispose()


def test_hardened_app_role_may_insert_but_never_change_audit_rows(
    roles: tuple[str, str, str],
) -> None:
    url, role, sealer = roles
    harden(url, role, sealer_role=sealer)
    as_app = create_engine(make_url(url).set(username=role, password=None))
    try:
        with as_app.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_events (id, recorded_at, request_id, actor_verified, roles,"
                    " action, outcome, http_status) VALUES (:id, now(), 'r', false, '[]',"
                    " 'unit:list', 'denied', 401)"
                ),
                {"id": "00000000-0000-0000-0000-000000000001"},
            )
        for statement in (
            "UPDATE audit_events SET outcome = 'allowed'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with as_app.connect() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert "permission denied" in str(refused.value.orig)
    finally:
        as_app.dispose()


def login(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def refused(engine: Engine, statement: str, params: dict[str, object] | None = None) -> str:
    with engine.begin() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text(statement), params or {})
    return str(caught.value.orig)


FORGED_EVENT = (
    "INSERT INTO audit_events (id, recorded_at, request_id, actor_verified, actor_issuer,"
    " actor_subject, roles, action, target_type, target_id, outcome, http_status) VALUES"
    " (:id, now() - interval '30 days', 'forged', true, 'https://idp.example', 'someone-else',"
    " '[\"caseworker\"]', 'referral:read', 'referral', :target, 'allowed', 200)"
)


def test_three_roles_the_app_cannot_seal_the_sealer_cannot_forge_and_verify_reports_it(
    roles: tuple[str, str, str], tmp_path: Path
) -> None:
    """Item 2 of "Trust under attack", as the review ran it: with the app role's
    credentials, after `db harden`, forge a verified, back-dated event and plant a
    checkpoint at seq 2**31-1; the sealer runs as its own role."""
    owner_url, app_role, sealer_role = roles
    runner = CliRunner()
    env = {
        "REFERRALS_INSTANCE_PATH": str(tmp_path / "instance"),
        "REFERRALS_DATABASE_URL": owner_url,
    }
    hardened = runner.invoke(
        main,
        ["db", "harden", "--app-role", app_role, "--sealer-role", sealer_role, "--reason", "T-1"],
        env=env,
    )
    assert hardened.exit_code == 0, hardened.output
    env |= {
        "REFERRALS_DATABASE_URL": login(owner_url, app_role),
        "REFERRALS_SEALER_DATABASE_URL": login(owner_url, sealer_role),
    }
    app = create_app(
        Settings(instance_path=tmp_path / "instance", database_url=env["REFERRALS_DATABASE_URL"])
    )
    token = devissuer.mint(
        devissuer.load_or_create_key(tmp_path / "instance"),
        role=Role.AUDITOR,
        unit=None,
        audience="referrals-api",
    )
    client = app.test_client()

    def audited_requests(count: int) -> None:
        for _ in range(count):
            response = client.get(
                "/api/v1/audit/checkpoints", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200

    audited_requests(3)
    sealed = runner.invoke(main, ["audit", "seal"], env=env)
    assert sealed.exit_code == 0, sealed.output
    as_app = create_engine(env["REFERRALS_DATABASE_URL"])
    as_sealer = create_engine(env["REFERRALS_SEALER_DATABASE_URL"])
    try:
        # The app role cannot write seals or checkpoints ...
        assert "permission denied" in refused(
            as_app,
            "INSERT INTO audit_seals (seq, event_id, hash, sealed_at)"
            " SELECT 99, id, :hash, now() FROM audit_events LIMIT 1",
            {"hash": bytes(32)},
        )
        assert "permission denied" in refused(
            as_app,
            "INSERT INTO audit_checkpoints (seq, head, created_at, key_id, signature)"
            " VALUES (2147483647, :hash, now(), 'k', :signature)",
            {"hash": bytes(32), "signature": bytes(64)},
        )
        # ... nor remove the count of refused requests ...
        assert "permission denied" in refused(as_app, "DELETE FROM audit_refusal_tallies")
        # ... and the sealer role cannot write, change or remove events, nor read cases.
        target = {"id": uuid.uuid4(), "target": str(uuid.uuid4())}
        for statement in (
            FORGED_EVENT,
            "UPDATE audit_events SET outcome = 'allowed'",
            "DELETE FROM audit_events",
            "SELECT count(*) FROM referrals",
        ):
            assert "permission denied" in refused(as_sealer, statement, target)
        # The review's forgery, with the app role's credentials: accepted by the
        # database (the app must be able to record), flagged by the sealer.
        with as_app.begin() as connection:
            connection.execute(text(FORGED_EVENT), target)
        audited_requests(1)
        sealed = runner.invoke(main, ["audit", "seal"], env=env)
        assert sealed.exit_code == 0, sealed.output
        with as_app.connect() as connection:
            forged_seq, flag = connection.execute(
                text("SELECT seq, flag FROM audit_seals WHERE event_id = :id"), target
            ).one()
            signed_to = connection.execute(text("SELECT max(seq) FROM audit_checkpoints")).scalar()
        assert flag == "backdated"
        assert signed_to is not None
        assert signed_to > forged_seq
    finally:
        as_app.dispose()
        as_sealer.dispose()
        app.extensions["referrals"].dispose()

    verified = runner.invoke(main, ["audit", "verify"], env=env)
    assert verified.exit_code == 1
    assert f"seq {forged_seq} (backdated)" in verified.output
