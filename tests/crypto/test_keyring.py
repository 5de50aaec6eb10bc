"""Keyring files and environment values."""

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from referrals.crypto.envelope import new_data_key
from referrals.crypto.keyring import Keyring, KeyringEnv, KeyringFile, generate_key


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyfile(tmp_path: Path) -> KeyringFile:
    return KeyringFile(tmp_path / "instance" / "keys.json")


def test_create_then_load(keyfile: KeyringFile) -> None:
    assert not keyfile.exists()
    created = keyfile.create(development=True)
    assert keyfile.exists()
    assert created.current == "kek-1"
    assert list(created.keks) == ["kek-1"]
    assert created.development is True
    assert keyfile.load() == created
    assert created.current_kek() == ("kek-1", created.keks["kek-1"])
    assert created.kek("kek-1") == created.keks["kek-1"]
    assert created.kek("kek-9") is None


def test_created_file_is_0600_and_has_the_documented_format(keyfile: KeyringFile) -> None:
    keyring = keyfile.create(development=False)
    assert mode_of(keyfile.path) == 0o600
    document = json.loads(keyfile.path.read_text())
    assert document == {
        "format": 1,
        "current": "kek-1",
        "keks": {"kek-1": base64.b64encode(keyring.keks["kek-1"]).decode()},
        "index_key": base64.b64encode(keyring.index_key).decode(),
        "development": False,
    }


def test_create_refuses_to_overwrite(keyfile: KeyringFile) -> None:
    keyfile.create(development=True)
    before = keyfile.path.read_bytes()
    with pytest.raises(FileExistsError):
        keyfile.create(development=True)
    assert keyfile.path.read_bytes() == before


def test_rotate_adds_a_current_kek_and_keeps_the_old(keyfile: KeyringFile) -> None:
    original = keyfile.create(development=True)
    assert keyfile.rotate() == "kek-2"
    assert keyfile.rotate() == "kek-3"
    rotated = keyfile.load()
    assert rotated.current == "kek-3"
    assert list(rotated.keks) == ["kek-1", "kek-2", "kek-3"]
    assert rotated.keks["kek-1"] == original.keks["kek-1"]
    assert len(set(rotated.keks.values())) == 3
    assert rotated.index_key == original.index_key
    assert rotated.development is True
    assert mode_of(keyfile.path) == 0o600
    # No temporary files left behind.
    assert sorted(p.name for p in keyfile.path.parent.iterdir()) == ["keys.json"]


def test_retire_removes_an_old_kek(keyfile: KeyringFile) -> None:
    keyfile.create(development=True)
    keyfile.rotate()
    keyfile.retire("kek-1")
    keyring = keyfile.load()
    assert list(keyring.keks) == ["kek-2"]
    assert keyring.current == "kek-2"
    assert mode_of(keyfile.path) == 0o600
    # Numbering continues after the highest id left.
    assert keyfile.rotate() == "kek-3"


def test_retire_refuses_the_current_and_unknown_keks(keyfile: KeyringFile) -> None:
    keyfile.create(development=True)
    keyfile.rotate()
    with pytest.raises(ValueError, match="current"):
        keyfile.retire("kek-2")
    with pytest.raises(ValueError, match="not in the keyring"):
        keyfile.retire("kek-7")
    assert list(keyfile.load().keks) == ["kek-1", "kek-2"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620, 0o644])
def test_load_refuses_a_file_others_may_access(keyfile: KeyringFile, mode: int) -> None:
    keyfile.create(development=True)
    keyfile.path.chmod(mode)
    with pytest.raises(ValueError, match="owner only") as info:
        keyfile.load()
    assert "\n" not in str(info.value)


def test_load_accepts_a_read_only_secret_mount(keyfile: KeyringFile) -> None:
    created = keyfile.create(development=False)
    keyfile.path.chmod(0o400)
    assert keyfile.load() == created


def test_repr_shows_no_key_bytes(keyfile: KeyringFile) -> None:
    keyfile.create(development=True)
    keyfile.rotate()
    keyring = keyfile.load()
    dek = new_data_key()
    secrets = [*keyring.keks.values(), keyring.index_key, dek.key]
    text = repr(keyring) + repr(dek) + str(keyring) + str(dek)
    for secret in secrets:
        for encoded in (base64.b64encode(secret).decode(), secret.hex(), repr(secret)):
            assert encoded not in text
    assert "kek-1" in repr(keyring)
    assert dek.key_id in repr(dek)


def test_keyring_env_loads_the_same_document(keyfile: KeyringFile) -> None:
    created = keyfile.create(development=False)
    assert KeyringEnv(keyfile.path.read_text()).load() == created
    assert "index_key" not in repr(KeyringEnv(keyfile.path.read_text()))


def test_keyring_is_a_frozen_copy_of_its_keks() -> None:
    keks = {"kek-1": generate_key()}
    keyring = Keyring(keks=keks, current="kek-1", index_key=generate_key())
    keks["kek-2"] = generate_key()
    assert list(keyring.keks) == ["kek-1"]
    assert keyring.development is False


def document(**changes: object) -> str:
    base: dict[str, object] = {
        "format": 1,
        "current": "kek-1",
        "keks": {"kek-1": base64.b64encode(os.urandom(32)).decode()},
        "index_key": base64.b64encode(os.urandom(32)).decode(),
        "development": False,
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not None})


SAME = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not a JSON object"),
        ("[]", "not a JSON object"),
        (document(format=2), "format"),
        (document(format=True), "format"),
        (document(current="kek-2"), "current KEK"),
        (document(keks={}), "non-empty"),
        (document(keks={"kek 1": SAME}, current="kek 1"), "key id"),
        (document(index_key="not base64!"), "base64"),
        (document(index_key=base64.b64encode(bytes(16)).decode()), "32 bytes"),
        (document(keks={"kek-1": base64.b64encode(bytes(31)).decode()}), "32 bytes"),
        (document(keks={"kek-1": SAME}, index_key=SAME), "differ"),
        (document(development="yes"), "boolean"),
        (document(extra=1), "fields"),
        (document(index_key=None), "fields"),
    ],
)
def test_bad_documents_are_refused_with_a_one_line_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        KeyringEnv(text).load()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("keyring environment value: ")
    assert SAME not in message


def test_development_defaults_to_false_when_absent() -> None:
    assert KeyringEnv(document(development=None)).load().development is False


@pytest.mark.parametrize("method", ["rotate", "retire"])
def test_keyring_env_is_read_only(method: str) -> None:
    assert not hasattr(KeyringEnv(document()), method)
