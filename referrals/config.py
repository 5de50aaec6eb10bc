"""Typed settings, read from ``REFERRALS_*`` environment variables.

Every setting has one name, one type and one default here; nothing else in the
package reads the environment.  ``Settings.check_production`` is the single place
that decides whether a configuration is fit to serve real case data.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from referrals.domain.codes import DisclosurePolicy


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(Exception):
    """The configuration is unusable; the message is one line, safe to print."""


ENV_UNSET = (
    "REFERRALS_ENV is not set: set REFERRALS_ENV=production to serve, "
    "or REFERRALS_ENV=development to try it out (referrals quickstart does)"
)


@dataclass(frozen=True)
class Settings:
    # The default of code that builds Settings itself (tests, tools); a process reads
    # ``from_env``, which refuses to guess when REFERRALS_ENV is unset.
    env: Environment = Environment.DEVELOPMENT
    # Where the SQLite file and the development signing key live.  None means
    # Flask's instance folder.
    instance_path: Path | None = None
    # None means SQLite in the instance folder.
    database_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str = "referrals-api"
    # An explicit allow-list: a token's own "alg" header never chooses the algorithm.
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    oidc_roles_claim: str = "roles"
    oidc_unit_claim: str = "unit"
    # Keycloak and some others send typ "JWT" rather than RFC 9068's "at+jwt".
    oidc_accept_jwt_typ: bool = False
    # Login assurance: the ``acr`` values each role accepts (REFERRALS_OIDC_REQUIRED_ACR
    # "caseworker=urn:a urn:b,youth_worker=urn:c").  Empty: no role demands one.
    oidc_required_acr: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Clock skew tolerated on exp/nbf/iat, in seconds.  Small on purpose.
    oidc_leeway: int = 30
    oidc_jwks_ttl: int = 300
    # At most one JWKS refetch for an unknown kid per this many seconds.
    oidc_jwks_refetch_interval: int = 30
    oidc_http_timeout: float = 5.0
    # The development token issuer (``referrals dev-token``); refused in production.
    dev_tokens: bool = True
    # The keyring: a JSON file (default: keyring.json in the instance folder, created for
    # development) or the same JSON in an environment variable (a mounted secret).
    keyring_file: Path | None = None
    keyring: str | None = field(default=None, repr=False)
    # Ed25519 key that signs audit checkpoints; separate from every data key.  Only the
    # sealer (``referrals audit seal``) reads it; API processes verify with the pinned
    # public keys below (unset: derived from this file, as development does).
    audit_signing_key_file: Path | None = None
    # Raw Ed25519 public keys (base64), comma-separated: the keys checkpoints may be
    # signed with.  Pin them in production so API processes never hold the signing key.
    audit_public_keys: tuple[str, ...] = ()
    # The sealer's own database role (PostgreSQL: the only one that may INSERT seals and
    # checkpoints, see ``db harden --sealer-role``).  Unset: the app's database URL.
    sealer_database_url: str | None = field(default=None, repr=False)
    # Seconds an event's recorded_at may lie before the newest sealed event, or after the
    # sealer's clock, before the sealer flags it (back-dated or future-dated).
    audit_time_tolerance: float = 300.0
    log_level: str = "INFO"
    # Decision deadlines (acute is always the same calendar day in Stockholm).
    deadline_urgent_days: int = 3
    deadline_normal_days: int = 14
    # Two-phase disclosure: the receiving unit sees identity and free text on accept
    # (or an audited reveal), or at once on receipt where law or practice requires it.
    disclosure_policy: DisclosurePolicy = DisclosurePolicy.ON_ACCEPT
    # Webhook delivery (``referrals worker``).
    webhook_timeout: float = 5.0
    webhook_max_attempts: int = 8
    webhook_backoff_base: float = 30.0
    webhook_backoff_cap: float = 6 * 3600.0
    worker_batch_size: int = 20
    # Production refuses webhooks to loopback, link-local, private, multicast, unspecified
    # and reserved addresses, except in these networks (CIDRs the operator vouches for).
    webhook_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Seconds a worker's claim on a batch lasts; unset: long enough for the batch to time out.
    worker_lease: float | None = None
    worker_interval: float = 1.0
    # Delivered and skipped webhooks are deleted after this many days (dead ones stay
    # until an admin replays them).
    outbox_retention_days: int = 30
    # The audit sealer (``referrals audit seal --follow``, or the quickstart's thread):
    # seconds between rounds when idle, and a signed checkpoint after this many new sealed
    # events or this many seconds after the first unsigned one, whichever comes first.
    audit_seal_interval: float = 1.0
    audit_checkpoint_events: int = 1000
    audit_checkpoint_interval: float = 60.0
    # Seconds an event may wait for its seal (and a checkpoint beyond its interval) before
    # verification and readiness report the sealer as behind.
    audit_seal_lag: float = 30.0
    # The web front end (/app/): its OIDC client at REFERRALS_OIDC_ISSUER.  Without a
    # client id, production serves no pages (development still offers "sign in as ...").
    web_client_id: str | None = None
    web_client_secret: str | None = field(default=None, repr=False)
    web_scope: str = "openid referrals:read referrals:write audit:read"
    # RFC 8707 resource indicator asked for with the authorization request, when the
    # provider issues API access tokens per resource (e.g. urn:referrals-api).
    web_resource: str | None = None
    # Signs CSRF tokens.  Production must set it; development generates one in the
    # instance folder (0600), like the other development keys.
    web_secret_key: str | None = field(default=None, repr=False)
    # A web session ends after this many seconds without a request, and at the latest
    # this many seconds after sign-in.
    web_session_idle: int = 900
    web_session_lifetime: int = 8 * 3600
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def resolved_audit_signing_key_file(self, instance_path: Path) -> Path:
        return self.audit_signing_key_file or instance_path / "audit-signing-key.pem"

    def resolved_keyring_file(self, instance_path: Path) -> Path:
        return self.keyring_file or instance_path / "keyring.json"

    def resolved_database_url(self, instance_path: Path) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{instance_path / 'referrals.sqlite3'}"

    def check_production(self, database_url: str) -> None:
        """Refuse development shortcuts when serving for real."""
        if not self.is_production:
            return
        if database_url.startswith("sqlite"):
            raise ConfigError("production needs PostgreSQL: set REFERRALS_DATABASE_URL")
        if not self.oidc_issuer:
            raise ConfigError("production needs an identity provider: set REFERRALS_OIDC_ISSUER")
        if self.dev_tokens:
            raise ConfigError("development tokens are enabled: set REFERRALS_DEV_TOKENS=false")
        if not self.oidc_issuer.startswith("https://"):
            raise ConfigError("production needs an https:// REFERRALS_OIDC_ISSUER")
        if self.web_client_id and not self.web_secret_key:
            raise ConfigError("the web front end needs REFERRALS_WEB_SECRET_KEY in production")
        if self.web_secret_key is not None and len(self.web_secret_key) < 32:
            raise ConfigError("REFERRALS_WEB_SECRET_KEY must be at least 32 characters")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of a real process.  ``REFERRALS_ENV`` must say which kind it is:
        an unset variable is a deployment that forgot it, and must not get development's
        shortcuts (its token issuer and generated keys)."""
        environ = os.environ if environ is None else environ
        if not environ.get("REFERRALS_ENV", "").strip():
            raise ConfigError(ENV_UNSET)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"REFERRALS_{f.name.upper()}"
            if f.name == "extra" or key not in environ:
                continue
            values[f.name] = _parse(f.name, environ[key])
        settings = cls(**values)
        if "dev_tokens" not in values and settings.is_production:
            # Production never defaults to accepting development tokens.
            settings = replace(settings, dev_tokens=False)
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


# The role names a setting may name (referrals.auth.principal.Role).
ROLE_NAMES = ("youth_worker", "caseworker", "auditor", "admin")
ROLES_HINT = ", ".join(ROLE_NAMES)
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _parse(name: str, raw: str) -> Any:
    raw = raw.strip()
    key = f"REFERRALS_{name.upper()}"
    match name:
        case "env":
            try:
                return Environment(raw.lower())
            except ValueError:
                raise ConfigError(f"{key} must be development or production") from None
        case "instance_path" | "keyring_file" | "audit_signing_key_file":
            return Path(raw)
        case "audit_public_keys":
            return tuple(k.strip() for k in raw.split(",") if k.strip())
        case "oidc_algorithms":
            algorithms = tuple(a.strip() for a in raw.split(",") if a.strip())
            unsafe = {a for a in algorithms if a == "none" or a.startswith("HS")}
            if not algorithms or unsafe:
                raise ConfigError(f"{key} must list asymmetric algorithms such as RS256,ES256")
            return algorithms
        case "oidc_required_acr":
            return _required_acr(key, raw)
        case "oidc_accept_jwt_typ" | "dev_tokens":
            if raw.lower() not in _BOOLEANS:
                raise ConfigError(f"{key} must be true or false")
            return _BOOLEANS[raw.lower()]
        case (
            "oidc_leeway"
            | "oidc_jwks_ttl"
            | "oidc_jwks_refetch_interval"
            | "web_session_idle"
            | "web_session_lifetime"
        ):
            if not raw.isdigit():
                raise ConfigError(f"{key} must be a whole number of seconds")
            return int(raw)
        case (
            "deadline_urgent_days"
            | "deadline_normal_days"
            | "webhook_max_attempts"
            | "worker_batch_size"
            | "outbox_retention_days"
            | "audit_checkpoint_events"
        ):
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(f"{key} must be a whole number of at least 1")
            return int(raw)
        case (
            "webhook_timeout"
            | "webhook_backoff_base"
            | "webhook_backoff_cap"
            | "worker_lease"
            | "worker_interval"
            | "audit_seal_interval"
            | "audit_checkpoint_interval"
            | "audit_seal_lag"
            | "audit_time_tolerance"
        ):
            seconds = _seconds(raw, maximum=86400)
            if seconds is None:
                raise ConfigError(f"{key} must be a positive number of seconds")
            return seconds
        case "oidc_http_timeout":
            timeout = _seconds(raw, maximum=60)
            if timeout is None:
                raise ConfigError(f"{key} must be a number of seconds up to 60")
            return timeout
        case "webhook_allowed_networks":
            try:
                return tuple(
                    ipaddress.ip_network(part.strip(), strict=True)
                    for part in raw.split(",")
                    if part.strip()
                )
            except ValueError:
                raise ConfigError(
                    f"{key} must list networks in CIDR form, such as 10.20.0.0/16,fd00:1::/64"
                ) from None
        case "disclosure_policy":
            try:
                return DisclosurePolicy(raw.lower())
            except ValueError:
                raise ConfigError(f"{key} must be on_accept or on_receipt") from None
        case "log_level":
            if raw.upper() not in _LOG_LEVELS:
                raise ConfigError(f"{key} must be one of {', '.join(_LOG_LEVELS)}")
            return raw.upper()
        case _:
            nullable = {
                "database_url",
                "sealer_database_url",
                "oidc_issuer",
                "keyring",
                "web_client_id",
                "web_client_secret",
                "web_secret_key",
                "web_resource",
            }
            return raw or None if name in nullable else raw


def _required_acr(key: str, raw: str) -> dict[str, tuple[str, ...]]:
    """``role=acr acr,role=acr``: each named role, with the acr values it accepts."""
    required: dict[str, tuple[str, ...]] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        role, _, values = part.partition("=")
        acr = tuple(v for v in values.split() if v)
        if role.strip() not in ROLE_NAMES or not acr or role.strip() in required:
            raise ConfigError(f"{key} must read role=acr [acr ...],... with roles of {ROLES_HINT}")
        required[role.strip()] = acr
    return required


def _seconds(raw: str, *, maximum: float) -> float | None:
    """A number of seconds in (0, maximum]; None for anything else (NaN included)."""
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0 < seconds <= maximum else None
