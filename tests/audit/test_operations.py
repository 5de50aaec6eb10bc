"""Operator commands on the audit trail: export, and hardening the app role."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
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
    assert [line["seq"] for line in lines] == [1, 2, 3, None]
    assert [line["http_status"] for line in lines] == [200, 200, 200, 401]
    assert all(len(line["hash"]) == 64 for line in lines[:3])
    assert token not in out.read_text()


@pytest.fixture
def app_role() -> Iterator[tuple[str, str]]:
    """A throw-away PostgreSQL database and a login role for the app, both removed after."""
    with postgres_database() as url:
        role = f"referrals_app_{secrets.token_hex(4)}"
        owner = create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            # Everything a careless deployment would grant; harden must take it back.
            grant = "GRANT INSERT, UPDATE, DELETE, SELECT ON ALL TABLES IN SCHEMA public"
            connection.execute(text(f'{grant} TO "{role}"'))
        try:
            yield url, role
        finally:
            with owner.connect() as connection:
                connection.execute(text(f'DROP OWNED BY "{role}"'))
                connection.execute(text(f'DROP ROLE "{role}"'))
            owner.dispose()


def test_hardened_app_role_may_insert_but_never_change_audit_rows(
    app_role: tuple[str, str],
) -> None:
    url, role = app_role
    harden(url, role)
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
