"""``keys rewrap`` re-seals webhook secrets under the current KEK without undoing a rotation.

The re-seal reads a unit's sealed secret, opens it and seals it again under the new KEK.
An admin who rotates that unit's secret in between (because it leaked, say) must win: a
re-seal that wrote back what it had read would restore the leaked secret, under the new
KEK, while the admin's answer showed a new one that no delivery is signed with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from referrals.config import Settings
from referrals.crypto.aead import FieldContext
from referrals.crypto.keyring import KeyringFile
from referrals.runtime import Runtime
from referrals.services import keyring_admin
from referrals.services.vault import Vault, webhook_secret_context
from tests.api.helpers import NORRMALM, SODERMALM, bearer
from tests.support.unit_admin import put_webhook


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    """A keyring of this test's own: it is rotated here."""
    return tmp_path / "instance"


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def stored_secret(runtime: Runtime, unit: str) -> tuple[str | None, str]:
    """(KEK id, the secret it opens to) as the database has it now."""
    with runtime.unit_of_work() as uow:
        row = uow.units.get(unit)
        assert row is not None
        assert row.webhook_secret is not None
        opened = runtime.vault.open_secret(webhook_secret_context(unit), row.webhook_secret)
        return row.webhook_secret_kek_id, opened


def test_a_rotation_between_the_reseals_read_and_write_is_kept(
    app: Flask,
    client: FlaskClient,
    dev_token: Callable[..., str],
    settings: Settings,
    instance_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack: a leaked secret.  The admin rotates it while ``keys rewrap`` is running;
    before the fix the re-seal wrote the old (leaked) secret back over the new one, so
    whoever held the leaked secret could go on forging deliveries."""
    runtime = runtime_of(app)
    admin = bearer(dev_token("admin"))
    leaked = put_webhook(client, admin, NORRMALM, "https://norrmalm.example.invalid/hook")[
        "webhook_secret"
    ]
    bystander = put_webhook(client, admin, SODERMALM, "https://sodermalm.example.invalid/hook")[
        "webhook_secret"
    ]
    assert stored_secret(runtime, NORRMALM) == ("kek-1", leaked)

    # `keys rotate`: a new current KEK in the instance's keyring file; `keys rewrap` then
    # runs in a process of its own, which loads the rotated keyring.
    keyring = KeyringFile(settings.resolved_keyring_file(instance_path))
    new_kek = keyring.rotate()
    assert new_kek == "kek-2"
    rewrap = Vault(keyring)

    # The admin's rotation lands right after the re-seal has opened Norrmalm's secret
    # (its read) and before it writes the re-sealed one back (its write).
    rotated: list[str] = []
    read_and_open = rewrap.open_secret

    def open_then_admin_rotates(context: FieldContext, blob: bytes) -> str:
        opened = read_and_open(context, blob)
        if context == webhook_secret_context(NORRMALM) and not rotated:
            answer = put_webhook(
                app.test_client(),
                admin,
                NORRMALM,
                "https://norrmalm.example.invalid/hook",
                rotate=True,
            )
            rotated.append(answer["webhook_secret"])
        return opened

    monkeypatch.setattr(rewrap, "open_secret", open_then_admin_rotates)
    with runtime.unit_of_work() as uow:
        unreadable = keyring_admin.reseal_secrets(uow, rewrap)
    monkeypatch.undo()

    assert unreadable == []
    (fresh,) = rotated
    assert fresh != leaked
    assert stored_secret(runtime, NORRMALM) == (new_kek, fresh), (
        "the re-seal brought back the secret the admin had just rotated away"
    )
    # The unit nobody touched was re-sealed as usual: same secret, new KEK.
    assert stored_secret(runtime, SODERMALM) == (new_kek, bystander)
    with runtime.unit_of_work() as uow:
        assert keyring_admin.secret_usage(uow) == {new_kek: 2}
        assert keyring_admin.reseal_secrets(uow, rewrap) == []  # nothing left to do
    assert stored_secret(runtime, NORRMALM) == (new_kek, fresh)
