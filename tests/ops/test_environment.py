"""An unset REFERRALS_ENV is a deployment that forgot it, not a developer's laptop.

The review's attack: a deployment with a real issuer and PostgreSQL but no
REFERRALS_ENV also trusted the development token issuer and generated development
keys.  Development is now only what is asked for; anything else is one line that says how.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from referrals import create_app
from referrals.cli import main
from referrals.config import ConfigError

PG = "postgresql+psycopg://referrals@db.invalid/referrals"
ISSUER = "https://idp.example.org/realms/stockholm"
UNSET = (
    "REFERRALS_ENV is not set: set REFERRALS_ENV=production to serve, or REFERRALS_ENV=development"
)
DEVELOPMENT_FILES = ("dev-token-signing-key.json", "keyring.json", "audit-signing-key.pem")


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A real-looking deployment's environment, with REFERRALS_ENV forgotten."""
    instance = tmp_path / "instance"
    monkeypatch.delenv("REFERRALS_ENV", raising=False)
    monkeypatch.setenv("REFERRALS_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("REFERRALS_DATABASE_URL", PG)
    monkeypatch.setenv("REFERRALS_OIDC_ISSUER", ISSUER)
    return instance


def test_gunicorns_factory_refuses_an_unset_environment(deployment: Path) -> None:
    # ``gunicorn 'referrals:create_app()'``: the settings come from the environment.
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert str(refused.value).startswith(UNSET)
    assert "\n" not in str(refused.value)
    # Nothing of development was created on the way.
    assert [name for name in DEVELOPMENT_FILES if (deployment / name).exists()] == []


@pytest.mark.parametrize(
    "command",
    [
        ["seed", "demo"],
        ["db", "upgrade"],
        ["dev-token", "--role", "admin"],
        ["keys", "init"],
        ["worker", "--once"],
        ["audit", "seal"],
    ],
)
def test_commands_refuse_an_unset_environment_in_one_line(
    deployment: Path, command: list[str]
) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {UNSET}")
    assert result.output.count("\n") == 1
    assert [name for name in DEVELOPMENT_FILES if (deployment / name).exists()] == []


def test_an_empty_environment_is_as_unset(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFERRALS_ENV", " ")
    result = CliRunner().invoke(main, ["dev-token", "--role", "admin"])
    assert result.output.startswith(f"Error: {UNSET}")
    assert result.output.count("\n") == 1


def test_development_when_asked_for(deployment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFERRALS_DATABASE_URL")
    monkeypatch.setenv("REFERRALS_ENV", "development")
    result = CliRunner().invoke(main, ["dev-token", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    assert result.output.count(".") == 2  # a compact JWS


def test_writing_the_spec_needs_no_environment(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # It serves nothing: it asks for development itself, like quickstart.
    monkeypatch.delenv("REFERRALS_DATABASE_URL")
    out = tmp_path / "spec.json"
    result = CliRunner().invoke(main, ["openapi", "write", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
