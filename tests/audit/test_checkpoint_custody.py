"""The signing key stays with the sealer: API processes verify with pinned public keys,
and signed checkpoints are published off the database for a witness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from referrals import create_app
from referrals.audit import chain, keys, publish
from referrals.cli import main
from referrals.config import ConfigError, Settings
from referrals.runtime import Runtime, audit_public_keys


def runtime_of(settings: Settings) -> Runtime:
    runtime = create_app(settings).extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def test_an_api_process_with_pinned_public_keys_never_reads_the_signing_key(
    tmp_path: Path,
) -> None:
    sealer_key = chain.generate_signing_key()
    pinned = keys.encode_public_key(sealer_key.public_key())
    absent = tmp_path / "no-signing-key-here.pem"
    runtime = runtime_of(
        Settings(
            instance_path=tmp_path / "api",
            audit_public_keys=(pinned,),
            audit_signing_key_file=absent,
        )
    )
    assert set(audit_public_keys(runtime)) == {chain.public_key_id(sealer_key.public_key())}
    assert not absent.exists()  # not created, not read
    runtime.dispose()


@pytest.mark.parametrize("bad", ["not base64!", "AAAA"])
def test_a_malformed_pinned_key_is_one_line(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="REFERRALS_AUDIT_PUBLIC_KEYS"):
        create_app(Settings(instance_path=tmp_path, audit_public_keys=(bad,)))


def test_seal_publishes_checkpoints_that_a_witness_verifies_with_the_public_key_alone(
    tmp_path: Path,
) -> None:
    instance, published = tmp_path / "instance", tmp_path / "witness"
    env = {"REFERRALS_INSTANCE_PATH": str(instance)}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    client = create_app(Settings(instance_path=instance)).test_client()
    client.get("/api/v1/units")  # refused, recorded
    result = runner.invoke(main, ["audit", "seal", "--publish", str(published)], env=env)
    assert result.exit_code == 0, result.output
    printed = runner.invoke(main, ["audit", "public-key"], env=env)
    key_id, encoded = printed.output.split()
    public = keys.parse_public_keys([encoded])[key_id]

    latest = json.loads((published / "latest.json").read_text())
    assert latest["seq"] == 2  # the operator's `db upgrade`, then the refused request
    assert (published / "checkpoint-0000000002.json").read_text() == (
        published / "latest.json"
    ).read_text()
    checkpoint = publish.load(published / "latest.json")
    assert latest["key_id"] == key_id
    public.verify(
        checkpoint.signature,
        chain.checkpoint_payload(
            checkpoint.seq,
            checkpoint.head,
            checkpoint.created_at,
            checkpoint.previous,
            checkpoint.key_id,
        ),
    )
