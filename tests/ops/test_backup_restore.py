"""The backup and restore runbook of deploy/README.md, on PostgreSQL, with the Compose
stack's processes: pg_dump plus the keyring and the signing key, restored into a fresh
database.  Reads decrypt, `audit verify` is ok, the sealer continues the chain and its
new checkpoints chain to the old ones.  With another keyring the migrate step refuses,
says why, and the database is byte for byte what was restored.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import readme_steps
from tests.support.compose_stack import Stack, compose_stack
from tests.support.keys import production_keyring

REFERRAL = {
    "subject": {
        "name": "Restora Backupsson",
        "personal_number": "19121212-1212",
        "district": "norrmalm",
    },
    "categories": ["drugs"],
    "priority": "urgent",
    "legal_basis": "duty_to_report",
    "submit": True,
}


def pg(
    stack: Stack, program: str, *args: str, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """pg_dump / pg_restore as the server's superuser, as `docker compose exec postgres`
    does in the runbook."""
    admin = make_url(stack.admin_url)
    command = [
        program,
        "--host",
        admin.host or "127.0.0.1",
        "--port",
        str(admin.port or 5432),
        "--username",
        admin.username or "postgres",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )  # type: ignore[call-overload,no-any-return]


def data_fingerprint(stack: Stack) -> str:
    """Every row of every table, as pg_dump prints them (deterministic order)."""
    dumped = pg(stack, "pg_dump", "--data-only", "--inserts", "--dbname", stack.database)
    assert dumped.returncode == 0, dumped.stderr
    # Newer pg_dump wraps its output in \restrict KEY ... \unrestrict KEY, a random key.
    lines = dumped.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def checkpoints(stack: Stack) -> list[tuple[int, bytes | None, bytes]]:
    engine = create_engine(stack.url("app"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT seq, previous, signature FROM audit_checkpoints ORDER BY seq")
            ).all()
    finally:
        engine.dispose()
    return [(row.seq, row.previous, row.signature) for row in rows]


def sign_now(stack: Stack) -> None:
    signed = stack.run("sealer", "referrals", "audit", "seal")
    assert signed.returncode == 0, signed.stderr


def verify(stack: Stack) -> subprocess.CompletedProcess[str]:
    return stack.run("app", "referrals", "audit", "verify")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    with compose_stack(tmp_path_factory.mktemp("restore")) as running:
        yield running  # type: ignore[misc]


def test_a_backup_restores_decrypts_verifies_and_the_chain_goes_on(
    stack: Stack, tmp_path: Path
) -> None:
    seeded = stack.run("app", "referrals", "seed", "stockholm", "--reason", "restore-test")
    assert seeded.returncode == 0, seeded.stderr
    base = stack.start_app()
    youth_worker = stack.api(base, "ungdomsjouren-app")
    created = youth_worker.post(f"{base}/api/v1/referrals", json=REFERRAL, timeout=30)
    assert created.status_code == 201, created.text
    referral_id = created.json()["id"]
    sign_now(stack)
    assert verify(stack).returncode == 0
    before = checkpoints(stack)
    assert before

    # Back up, then lose the database and restore it: deploy/README.md's commands as
    # written (tests/support/readme_steps.py), up to the migrate step.
    stack.stop("app")
    for command in readme_steps.steps("compose-backup"):
        readme_steps.perform(stack, command)
    assert (stack.workdir / "backup" / "keyring.json").read_bytes() == (
        stack.secrets_dir / "keyring.json"
    ).read_bytes()
    restore = readme_steps.steps("compose-restore")
    at = restore.index("docker compose run --rm migrate")
    for command in restore[:at]:
        readme_steps.perform(stack, command)

    # A keyring that is not this database's: refused before anything is written.
    unchanged = data_fingerprint(stack)
    wrong = tmp_path / "wrong-keyring.json"
    wrong.write_text(production_keyring())
    wrong.chmod(0o600)
    refused = stack.run("migrate", env={"REFERRALS_KEYRING_FILE": str(wrong)})
    assert refused.returncode != 0
    assert "this keyring does not open this database" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert "Restora" not in refused.stderr + refused.stdout
    assert data_fingerprint(stack) == unchanged

    # The right keyring: the rest of the runbook (migrate, start, audit verify).
    done = [readme_steps.perform(stack, command) for command in restore[at:]]
    assert done[-1].endswith("ok")
    base = f"http://127.0.0.1:{stack.ports['app']}"
    read = youth_worker.get(f"{base}/api/v1/referrals/{referral_id}", timeout=30)
    assert read.status_code == 200, read.text
    assert read.json()["subject"]["name"] == "Restora Backupsson"
    # More events after the restore: the sealer seals them onto the old chain ...
    for _ in range(3):
        assert youth_worker.get(f"{base}/api/v1/referrals", timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        sign_now(stack)
        after = checkpoints(stack)
        if len(after) > len(before):
            break
        assert time.monotonic() < deadline, "no new checkpoint after the restore"
        time.sleep(0.5)
    # ... and each new checkpoint names the previous one's signature.
    assert after[: len(before)] == before
    for (_, _, previous_signature), (_, previous, _) in itertools.pairwise(after):
        assert previous == previous_signature
    verified = verify(stack)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().endswith("ok")


def test_keys_check_refuses_a_keyring_missing_a_kek(stack: Stack, tmp_path: Path) -> None:
    """A keyring of the right shape whose KEK ids differ says which KEK is missing."""
    wrong = tmp_path / "other.json"
    wrong.write_text(production_keyring().replace('"kek-1"', '"kek-9"'))
    wrong.chmod(0o600)
    refused = stack.run(
        "migrate", "referrals", "keys", "check", env={"REFERRALS_KEYRING_FILE": str(wrong)}
    )
    assert refused.returncode == 1
    assert "KEK kek-1" in refused.stderr
    assert "is not in the keyring" in refused.stderr
