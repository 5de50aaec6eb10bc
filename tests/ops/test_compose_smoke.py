"""deploy/compose.yaml run as processes: secrets, PostgreSQL roles, migrate and harden,
the app under gunicorn, the worker, the sealer, a youth worker's request, verification.

The test IdP (tests/idp) serves HTTPS with the certificate the secrets service made, and
stands in for Keycloak.  Each process gets its service's command, environment and secret
files (tests/support/compose_stack.py), so a setting missing from compose.yaml fails here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from tests.support import readme_steps
from tests.support.compose_stack import Stack, compose_stack

REFERRAL = {
    "subject": {
        "name": "Testa Composesson",
        "personal_number": "19121212-1212",
        "district": "norrmalm",
    },
    "categories": ["drugs"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
    "submit": True,
}


DONE: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """Made by deploy/README.md's Compose steps, each run as written."""
    with compose_stack(tmp_path_factory.mktemp("compose"), prepare=False) as running:
        DONE.extend(readme_steps.run_all(running, "compose-step"))
        yield running  # type: ignore[misc]


def test_every_readme_step_ran_and_only_keycloak_was_stood_in(stack: Stack) -> None:
    assert [command for command, _ in DONE] == readme_steps.steps("compose-step")
    stood_in = [command for command, done in DONE if done == readme_steps.STOOD_IN]
    assert all(" keycloak " in command for command in stood_in)
    assert len(stood_in) == 1
    [(_, verified)] = [(c, d) for c, d in DONE if "audit verify" in c]
    assert verified.endswith("ok")


def test_a_readme_command_nothing_can_run_fails(stack: Stack) -> None:
    with pytest.raises(AssertionError, match="no way to run"):
        readme_steps.perform(stack, "docker compose pause app")


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_the_stack_serves_a_youth_worker_and_the_trail_verifies(stack: Stack) -> None:
    # The README's steps seeded Stockholm and started the app, the worker and the sealer.
    base = f"http://127.0.0.1:{stack.ports['app']}"

    youth_worker = stack.api(base, "ungdomsjouren-app")
    created = youth_worker.post(f"{base}/api/v1/referrals", json=REFERRAL, timeout=30)
    assert created.status_code == 201, created.text
    referral = created.json()
    assert referral["status"] == "requested"
    assert referral["receiving_unit"] == "norrmalm"
    read = youth_worker.get(f"{base}/api/v1/referrals/{referral['id']}", timeout=30)
    assert read.json()["subject"]["name"] == "Testa Composesson"
    # Without a token: refused, and recorded.
    assert requests.get(f"{base}/api/v1/referrals", timeout=30).status_code == 401

    # The sealer seals and signs what the app recorded; verify as the app would.
    def verified() -> bool:
        result = stack.run("app", "referrals", "audit", "verify")
        return result.returncode == 0 and result.stdout.strip().endswith("ok")

    stack.run("sealer", "referrals", "audit", "checkpoint")
    wait_for(verified)
    # The sealer's own health check passes, as its role (it reads the trail only).
    check = stack.service("sealer")["healthcheck"]["test"]
    assert check[0] == "CMD"
    healthy = stack.run("sealer", *check[1:])
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    for name in ("app", "worker", "sealer"):
        assert stack.processes[name].poll() is None, stack.log(name)
    # Nothing personal in any process's output.
    for name in ("app", "worker", "sealer"):
        assert "Composesson" not in stack.log(name)
        assert "19121212" not in stack.log(name)


def test_each_process_connects_as_its_own_role(stack: Stack) -> None:
    roles = {}
    for duty in ("owner", "app", "sealer"):
        engine = create_engine(stack.url(duty))
        with engine.connect() as connection:
            roles[duty] = connection.scalar(text("SELECT current_user"))
        engine.dispose()
    assert roles == stack.roles
    env = {name: stack.env(name) for name in ("migrate", "app", "worker", "sealer")}
    assert env["migrate"]["REFERRALS_DATABASE_URL_FILE"].endswith("owner-database-url")
    assert env["app"]["REFERRALS_DATABASE_URL_FILE"].endswith("app-database-url")
    assert env["worker"]["REFERRALS_DATABASE_URL_FILE"].endswith("app-database-url")
    assert env["sealer"]["REFERRALS_SEALER_DATABASE_URL_FILE"].endswith("sealer-database-url")
    # Only the sealer holds the signing key; only migrate the owner's credentials.
    assert [n for n, e in env.items() if "REFERRALS_AUDIT_SIGNING_KEY_FILE" in e] == ["sealer"]
    holders = [n for n in env if "owner-database-url" in stack.service(n).get("secrets", [])]
    assert holders == ["migrate"]


@pytest.mark.parametrize(
    ("duty", "statement"),
    [
        ("app", "UPDATE audit_events SET outcome = 'allowed'"),
        ("app", "DELETE FROM audit_events"),
        ("app", "INSERT INTO audit_checkpoints SELECT * FROM audit_checkpoints"),
        ("sealer", "SELECT count(*) FROM referrals"),
        ("sealer", "UPDATE audit_seals SET hash = hash"),
        ("sealer", "DELETE FROM audit_events"),
        ("app", "CREATE TABLE planted (id int)"),
    ],
)
def test_the_roles_are_separated_as_security_md_prescribes(
    stack: Stack, duty: str, statement: str
) -> None:
    engine = create_engine(stack.url(duty))
    try:
        with engine.connect() as connection, pytest.raises(ProgrammingError):
            connection.execute(text(statement))
    finally:
        engine.dispose()


def test_a_second_migrate_run_is_harmless(stack: Stack) -> None:
    again = stack.run("migrate")
    assert again.returncode == 0, again.stderr
    assert "the keyring opens this database" in again.stdout


def test_the_secrets_are_private_and_not_remade(stack: Stack) -> None:
    for name, reader_only in (("keyring.json", True), ("audit-signing-key.pem", True)):
        mode = (stack.secrets_dir / name).stat().st_mode & 0o777
        assert mode == 0o400 if reader_only else mode & 0o444
    before = (stack.secrets_dir / "keyring.json").read_bytes()
    from tests.support.compose_stack import make_secrets

    again = make_secrets(stack)
    assert again.returncode == 0
    assert "nothing (all present)" in again.stdout
    assert (stack.secrets_dir / "keyring.json").read_bytes() == before


def test_compose_secrets_are_only_files_never_values(stack: Stack) -> None:
    for name, service in stack.compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "KEY", "DATABASE_URL")):
                if key in ("REFERRALS_KEYRING_FILE",) or key.endswith("_FILE"):
                    assert str(value).startswith("/run/secrets/"), (name, key)
                else:
                    assert key == "KC_BOOTSTRAP_ADMIN_USERNAME", (name, key)


def test_the_secrets_folder_is_ignored_by_git() -> None:
    ignore = Path(__file__).parents[2] / "deploy" / ".gitignore"
    assert "secrets/" in ignore.read_text().split()
