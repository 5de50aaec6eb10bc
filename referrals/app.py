"""The application factory.  ``gunicorn 'referrals:create_app()'`` calls it."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from referrals import api, logs, web
from referrals.audit import chain
from referrals.audit.keys import AuditKeys, parse_public_keys
from referrals.auth.authenticate import Authenticator
from referrals.auth.devissuer import DEV_ALGORITHM, DEV_ISSUER, load_or_create_key, public_key_set
from referrals.auth.keys import DiscoveredKeySource, StaticKeySource
from referrals.auth.principal import Role
from referrals.auth.tokens import AccessTokenValidator, TrustedIssuer
from referrals.config import ConfigError, Settings
from referrals.crypto.keyring import KeyProvider, KeyringEnv, KeyringFile
from referrals.db.engine import Database, connect
from referrals.domain.deadlines import DeadlinePolicy
from referrals.metrics.families import Metrics
from referrals.runtime import Clock, Runtime, utc_now
from referrals.services.vault import Vault


def create_app(
    config: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock = utc_now,
) -> Flask:
    """Build the app.  ``database`` and ``clock`` are seams for tests and tools."""
    settings = config or Settings.from_env()
    app = Flask(
        "referrals",
        static_folder=None,
        instance_path=str(settings.instance_path.resolve()) if settings.instance_path else None,
    )
    instance_path = Path(app.instance_path)
    instance_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkdir's mode applies only on creation; the folder holds keys and the SQLite file.
    # Changed only when it differs: on a read-only root filesystem (the image's folder,
    # already 0700) even a chmod to the same mode fails with EROFS.
    if stat.S_IMODE(instance_path.stat().st_mode) != 0o700:
        instance_path.chmod(0o700)
    database_url = settings.resolved_database_url(instance_path)
    settings.check_production(database_url)
    logs.configure(settings.log_level)

    app.config.update(
        MAX_CONTENT_LENGTH=256 * 1024,  # a referral is text; nothing legitimate is larger
        JSON_SORT_KEYS=False,
    )
    metrics = Metrics()
    app.extensions["referrals"] = Runtime(
        settings=settings,
        instance_path=instance_path,
        database=database or connect(database_url),
        authenticator=build_authenticator(
            settings,
            instance_path,
            on_jwks_failure=lambda: metrics.http().jwks_refresh_failures.inc(),
        ),
        deadlines=DeadlinePolicy(
            urgent=timedelta(days=settings.deadline_urgent_days),
            normal=timedelta(days=settings.deadline_normal_days),
        ),
        vault=build_vault(settings, instance_path),
        audit_keys=build_audit_keys(settings, instance_path),
        clock=clock,
        metrics=metrics,
        metrics_token=settings.resolved_metrics_token(),
    )
    api.init_app(app)
    web.init_app(app, app.extensions["referrals"])
    return app


def key_provider(settings: Settings, instance_path: Path) -> KeyProvider:
    if settings.keyring:
        return KeyringEnv(settings.keyring)
    return KeyringFile(settings.resolved_keyring_file(instance_path))


def build_vault(settings: Settings, instance_path: Path) -> Vault:
    provider = key_provider(settings, instance_path)
    if isinstance(provider, KeyringFile) and not provider.exists():
        if settings.is_production:
            raise ConfigError(
                "production needs a keyring: set REFERRALS_KEYRING_FILE or REFERRALS_KEYRING"
            )
        with contextlib.suppress(FileExistsError):  # another worker created it first
            provider.create(development=True)
    try:
        vault = Vault(provider)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"unusable keyring: {exc}") from None
    if settings.is_production and vault.keyring.development:
        raise ConfigError("production refuses a development keyring")
    return vault


def build_audit_keys(settings: Settings, instance_path: Path) -> AuditKeys:
    """Pinned public keys when configured (the signing key then stays with the sealer);
    otherwise the signing key file is loaded now, so a missing one is a startup error."""

    def load() -> Ed25519PrivateKey:
        return load_audit_signing_key(settings, instance_path)

    try:
        pinned = parse_public_keys(settings.audit_public_keys)
    except ValueError as exc:
        raise ConfigError(f"REFERRALS_AUDIT_PUBLIC_KEYS: {exc}") from None
    keys = AuditKeys(load, pinned)
    if not pinned:
        keys.signing_key()
    return keys


def load_audit_signing_key(settings: Settings, instance_path: Path) -> Ed25519PrivateKey:
    path = settings.resolved_audit_signing_key_file(instance_path)
    if not path.exists():
        if settings.is_production:
            raise ConfigError("production needs REFERRALS_AUDIT_SIGNING_KEY_FILE (Ed25519, PEM)")
        with contextlib.suppress(FileExistsError):  # another worker created it first
            chain.create_signing_key_file(path)
    try:
        return chain.load_signing_key(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"unusable audit signing key: {exc}") from None


def build_authenticator(
    settings: Settings, instance_path: Path, *, on_jwks_failure: Callable[[], None] = lambda: None
) -> Authenticator:
    issuers = []
    if settings.oidc_issuer:
        issuers.append(
            TrustedIssuer(
                issuer=settings.oidc_issuer,
                keys=DiscoveredKeySource(
                    settings.oidc_issuer,
                    ttl=settings.oidc_jwks_ttl,
                    refetch_interval=settings.oidc_jwks_refetch_interval,
                    timeout=settings.oidc_http_timeout,
                    on_failure=on_jwks_failure,
                ),
                algorithms=settings.oidc_algorithms,
            )
        )
    if settings.dev_tokens and not settings.is_production:
        key = load_or_create_key(instance_path)
        issuers.append(
            TrustedIssuer(
                issuer=DEV_ISSUER,
                keys=StaticKeySource(public_key_set(key)),
                algorithms=(DEV_ALGORITHM,),
            )
        )
    validator = AccessTokenValidator(
        issuers,
        audience=settings.oidc_audience,
        leeway=settings.oidc_leeway,
        accept_jwt_typ=settings.oidc_accept_jwt_typ,
    )
    return Authenticator(
        validator,
        roles_claim=settings.oidc_roles_claim,
        unit_claim=settings.oidc_unit_claim,
        required_acr={Role(r): v for r, v in settings.oidc_required_acr.items()},
    )
