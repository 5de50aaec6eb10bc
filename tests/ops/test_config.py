"""Settings from REFERRALS_* variables, and refusing development shortcuts in production."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from referrals import create_app
from referrals.config import ConfigError, Environment, Settings
from referrals.crypto.keyring import KeyringFile
from tests.support.keys import audit_signing_key, production_keyring

PG = "postgresql+psycopg://referrals@db.invalid/referrals"
ISSUER = "https://idp.example.org/realms/stockholm"


def production(instance_path: Path) -> Settings:
    return Settings(
        env=Environment.PRODUCTION,
        instance_path=instance_path,
        database_url=PG,
        oidc_issuer=ISSUER,
        dev_tokens=False,
        keyring=production_keyring(),
        audit_signing_key_file=audit_signing_key(instance_path),
    )


def test_development_when_asked_for_is_the_embedded_setup() -> None:
    settings = Settings.from_env({"REFERRALS_ENV": "development"})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.dev_tokens is True
    assert settings.oidc_algorithms == ("RS256", "ES256")
    assert settings.oidc_roles_claim == "roles"
    assert settings.oidc_unit_claim == "unit"
    assert settings.resolved_database_url(Path("/srv/x")) == "sqlite:////srv/x/referrals.sqlite3"


def test_every_documented_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "production",
            "REFERRALS_INSTANCE_PATH": "/var/lib/referrals",
            "REFERRALS_DATABASE_URL": PG,
            "REFERRALS_OIDC_ISSUER": ISSUER,
            "REFERRALS_OIDC_AUDIENCE": "api://referrals",
            "REFERRALS_OIDC_ALGORITHMS": "RS256, PS256",
            "REFERRALS_OIDC_ROLES_CLAIM": "realm_access.roles",
            "REFERRALS_OIDC_UNIT_CLAIM": "org_unit",
            "REFERRALS_OIDC_ACCEPT_JWT_TYP": "true",
            "REFERRALS_OIDC_LEEWAY": "10",
        }
    )
    assert settings.env is Environment.PRODUCTION
    assert settings.instance_path == Path("/var/lib/referrals")
    assert settings.database_url == PG
    assert settings.oidc_issuer == ISSUER
    assert settings.oidc_audience == "api://referrals"
    assert settings.oidc_algorithms == ("RS256", "PS256")
    assert settings.oidc_roles_claim == "realm_access.roles"
    assert settings.oidc_unit_claim == "org_unit"
    assert settings.oidc_accept_jwt_typ is True
    assert settings.oidc_leeway == 10
    # Production never defaults to trusting development tokens.
    assert settings.dev_tokens is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REFERRALS_ENV", "staging"),
        ("REFERRALS_OIDC_ALGORITHMS", "none"),
        ("REFERRALS_OIDC_ALGORITHMS", "RS256,HS256"),
        ("REFERRALS_OIDC_ALGORITHMS", ""),
        ("REFERRALS_OIDC_LEEWAY", "soon"),
        ("REFERRALS_DEV_TOKENS", "maybe"),
        ("REFERRALS_OIDC_LEEWAY", "-5"),
        ("REFERRALS_OIDC_HTTP_TIMEOUT", "0"),
        ("REFERRALS_LOG_LEVEL", "chatty"),
        ("REFERRALS_AUDIT_SEAL_INTERVAL", "0"),
        ("REFERRALS_AUDIT_CHECKPOINT_EVENTS", "0"),
        ("REFERRALS_AUDIT_CHECKPOINT_INTERVAL", "never"),
        ("REFERRALS_AUDIT_SEAL_LAG", "-1"),
    ],
)
def test_unusable_values_are_refused_with_the_variable_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"REFERRALS_ENV": "development", variable: value})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"database_url": None}, "PostgreSQL"),
        ({"database_url": "sqlite:////tmp/x.sqlite3"}, "PostgreSQL"),
        ({"oidc_issuer": None}, "REFERRALS_OIDC_ISSUER"),
        ({"dev_tokens": True}, "REFERRALS_DEV_TOKENS"),
        ({"oidc_issuer": "http://idp.example.org"}, "https://"),
    ],
)
def test_production_refuses_development_settings(
    tmp_path: Path, overrides: dict[str, object], reason: str
) -> None:
    settings = production(tmp_path).with_overrides(**overrides)
    with pytest.raises(ConfigError, match=reason) as refused:
        create_app(settings)
    assert "\n" not in str(refused.value)


def test_sealer_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_AUDIT_SEAL_INTERVAL": "0.5",
            "REFERRALS_AUDIT_CHECKPOINT_EVENTS": "200",
            "REFERRALS_AUDIT_CHECKPOINT_INTERVAL": "15",
            "REFERRALS_AUDIT_SEAL_LAG": "10",
        }
    )
    assert (
        settings.audit_seal_interval,
        settings.audit_checkpoint_events,
        settings.audit_checkpoint_interval,
        settings.audit_seal_lag,
    ) == (0.5, 200, 15.0, 10.0)


def test_log_level_is_case_insensitive() -> None:
    environ = {"REFERRALS_ENV": "development", "REFERRALS_LOG_LEVEL": "debug"}
    assert Settings.from_env(environ).log_level == "DEBUG"


def test_production_with_real_settings_starts_without_a_development_key(tmp_path: Path) -> None:
    create_app(production(tmp_path))
    assert not (tmp_path / "dev-token-signing-key.json").exists()


def test_instance_folder_and_embedded_database_are_private(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    create_app(Settings(instance_path=instance))
    assert instance.stat().st_mode & 0o777 == 0o700
    assert (instance / "referrals.sqlite3").stat().st_mode & 0o777 == 0o600
    assert (instance / "dev-token-signing-key.json").stat().st_mode & 0o777 == 0o600


def test_production_refuses_a_development_keyring(tmp_path: Path) -> None:
    development = KeyringFile(tmp_path / "dev-keyring.json").create(development=True)
    assert development.development
    settings = production(tmp_path).with_overrides(
        keyring=None, keyring_file=tmp_path / "dev-keyring.json"
    )
    with pytest.raises(ConfigError, match="development keyring"):
        create_app(settings)


def test_production_without_a_keyring_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REFERRALS_KEYRING"):
        create_app(production(tmp_path).with_overrides(keyring=None))


def test_development_creates_a_private_keyring_once(tmp_path: Path) -> None:
    create_app(Settings(instance_path=tmp_path))
    keyring = tmp_path / "keyring.json"
    first = keyring.read_text()
    assert keyring.stat().st_mode & 0o777 == 0o600
    create_app(Settings(instance_path=tmp_path))
    assert keyring.read_text() == first


def test_an_audit_signing_key_others_may_read_is_refused(tmp_path: Path) -> None:
    settings = production(tmp_path)
    assert settings.audit_signing_key_file is not None
    settings.audit_signing_key_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"audit signing key.*chmod 600"):
        create_app(settings)


def test_production_without_an_audit_signing_key_says_which_variable(tmp_path: Path) -> None:
    settings = production(tmp_path).with_overrides(audit_signing_key_file=tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match="REFERRALS_AUDIT_SIGNING_KEY_FILE"):
        create_app(settings)


# -- credentials from files (REFERRALS_*_FILE) --------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("DATABASE_URL", "database_url"),
        ("SEALER_DATABASE_URL", "sealer_database_url"),
        ("WEB_CLIENT_SECRET", "web_client_secret"),
        ("WEB_SECRET_KEY", "web_secret_key"),
        ("METRICS_TOKEN", "metrics_token"),
    ],
)
def test_a_credential_is_read_from_its_file(tmp_path: Path, name: str, field: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("value-from-a-mounted-secret\n")
    settings = Settings.from_env(
        {"REFERRALS_ENV": "production", f"REFERRALS_{name}_FILE": str(secret)}
    )
    # One trailing newline dropped (editors and `echo` add one), nothing else.
    assert getattr(settings, field) == "value-from-a-mounted-secret"
    assert "value-from" not in repr(settings)


def test_a_credential_and_its_file_together_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PG)
    with pytest.raises(ConfigError, match="REFERRALS_DATABASE_URL or REFERRALS_DATABASE_URL_FILE"):
        Settings.from_env(
            {
                "REFERRALS_ENV": "production",
                "REFERRALS_DATABASE_URL": PG,
                "REFERRALS_DATABASE_URL_FILE": str(secret),
            }
        )


def test_an_unreadable_secret_file_names_the_path_never_the_content(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="cannot read") as refused:
        Settings.from_env(
            {"REFERRALS_ENV": "production", "REFERRALS_WEB_SECRET_KEY_FILE": str(missing)}
        )
    assert str(missing) in str(refused.value)
    big = tmp_path / "big"
    big.write_text("p" * (64 * 1024 + 1))
    with pytest.raises(ConfigError, match="larger than a secret") as refused:
        Settings.from_env({"REFERRALS_ENV": "production", "REFERRALS_DATABASE_URL_FILE": str(big)})
    assert "ppp" not in str(refused.value)


@pytest.mark.parametrize("content", ["", "\n", "  \n"])
def test_an_empty_secret_file_is_refused_not_taken_as_unset(tmp_path: Path, content: str) -> None:
    """An empty mount must not switch a credential off silently (metrics without their
    token would answer 404 and look merely unconfigured)."""
    empty = tmp_path / "empty"
    empty.write_text(content)
    with pytest.raises(ConfigError, match="is empty"):
        Settings.from_env(
            {"REFERRALS_ENV": "development", "REFERRALS_METRICS_TOKEN_FILE": str(empty)}
        )


def test_only_credentials_have_file_variants(tmp_path: Path) -> None:
    """REFERRALS_ENV_FILE does not set the environment: a _FILE of a setting that is no
    credential is not read (and REFERRALS_KEYRING_FILE keeps its meaning: the path)."""
    env_file = tmp_path / "env"
    env_file.write_text("development")
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "production",
            "REFERRALS_ENV_FILE": str(env_file),
            "REFERRALS_KEYRING_FILE": str(tmp_path / "keyring.json"),
        }
    )
    assert settings.env is Environment.PRODUCTION
    assert settings.keyring_file == tmp_path / "keyring.json"
    assert settings.keyring is None


def test_a_private_instance_folder_on_a_read_only_filesystem_is_left_alone(
    tmp_path: Path,
) -> None:
    """The image's /var/lib/referrals is already 0700 and, under `read_only: true` or
    readOnlyRootFilesystem, read-only: even chmod to the same mode fails there (EROFS),
    which stopped every process of the Compose stack and the Kubernetes pods at start."""
    source = tmp_path / "root"
    (source / "instance").mkdir(parents=True, mode=0o700)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    bound = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(source), str(mounted)],
        capture_output=True,
        check=False,
    )
    if bound.returncode != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    try:
        instance = mounted / "instance"
        with pytest.raises(OSError, match="Read-only"):
            instance.chmod(0o700)  # what the start used to do
        keys = tmp_path / "keys"
        keys.mkdir()
        app = create_app(production(keys).with_overrides(instance_path=instance))
        assert app.instance_path == str(instance)
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
