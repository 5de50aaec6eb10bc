"""The ``referrals`` command, run as an operator would."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from click.testing import CliRunner

from referrals import create_app
from referrals.audit.chain import load_signing_key, public_key_id
from referrals.audit.keys import encode_public_key
from referrals.auth.devissuer import load_or_create_key
from referrals.cli import main
from referrals.config import Settings
from tests.ops.cli import invoke, run
from tests.support.keys import audit_signing_key, production_keyring


def test_upgrade_seed_and_a_development_token_that_the_app_accepts(
    env: dict[str, str], tmp_path: Path
) -> None:
    run(env, "db", "upgrade")
    assert "5 units created" in run(env, "seed", "demo")
    assert "0 units created\nrouting rules unchanged" in run(env, "seed", "demo")  # idempotent
    token = run(env, "dev-token", "--role", "caseworker", "--unit", "norrmalm").strip()

    app = create_app(Settings(instance_path=tmp_path / "instance"))
    response = app.test_client().get(
        "/api/v1/referrals", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json == {"items": [], "next_cursor": None}


def test_dev_token_is_refused_in_production(env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **env,
        "REFERRALS_ENV": "production",
        "REFERRALS_DATABASE_URL": "postgresql+psycopg://x@db.invalid/x",
        "REFERRALS_OIDC_ISSUER": "https://idp.example.org",
        "REFERRALS_KEYRING": production_keyring(),
        "REFERRALS_AUDIT_SIGNING_KEY_FILE": str(audit_signing_key(tmp_path)),
    }
    result = CliRunner().invoke(main, ["dev-token", "--role", "admin"], env=env)
    assert result.exit_code != 0
    assert "development tokens are disabled" in result.output


def test_production_misconfiguration_is_one_clear_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={**env, "REFERRALS_ENV": "production"})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: production needs PostgreSQL: set REFERRALS_DATABASE_URL"
    )


def test_openapi_write(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    run(env, "openapi", "write", "--output", str(out))
    assert json.loads(out.read_text())["openapi"] == "3.1.0"


def _load_kid(path: str) -> str:
    return str(load_or_create_key(Path(path)).kid)


def test_development_key_is_created_once_when_workers_race(tmp_path: Path) -> None:
    """Several gunicorn workers start at once: one key wins, everyone uses it."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        kids = pool.map(_load_kid, [str(tmp_path)] * 8)
    assert len(set(kids)) == 1
    key_file = tmp_path / "dev-token-signing-key.json"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dev-key-")]


def test_audit_keygen_makes_a_private_signing_key_once_and_prints_its_public_key(
    tmp_path: Path,
) -> None:
    """Production needs a signing key before anything runs (the Compose secrets step makes
    one); keygen needs no database and never replaces a key."""
    path = tmp_path / "audit-signing-key.pem"
    env = {"REFERRALS_ENV": "production", "REFERRALS_AUDIT_SIGNING_KEY_FILE": str(path)}
    printed = run(env, "audit", "keygen").strip()
    assert path.stat().st_mode & 0o777 == 0o600
    public = load_signing_key(path).public_key()
    assert printed == f"{public_key_id(public)}\t{encode_public_key(public)}"
    before = path.read_bytes()
    again = invoke(env, "audit", "keygen")
    assert again.exit_code == 1
    assert "never overwritten" in again.output
    assert path.read_bytes() == before
