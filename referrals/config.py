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
    # None means SQLite in the instance folder.  Not in repr: the URL carries the role's
    # password (REFERRALS_DATABASE_URL_FILE from a mounted secret).
    database_url: str | None = field(default=None, repr=False)
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
    # Statistics: a count under this is withheld, with enough others that it cannot be
    # worked out from the totals (referrals/domain/suppression.py).
    statistics_min_cell: int = 5
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
    # Retention (gallring) of closed referrals, in days after the referral reached its
    # final status (drafts: after their last change).  Defaults only: an organisation sets
    # these from its own gallringsbeslut (README: Retention and legal holds says why each).
    retention_rejected_days: int = 365
    retention_cancelled_days: int = 365
    retention_entered_in_error_days: int = 90
    retention_completed_days: int = 730
    retention_failed_days: int = 730
    retention_draft_days: int = 30
    # The worker erases at most this many expired referrals per round ...
    retention_batch_size: int = 50
    # ... and looks for them at most once per this many seconds (at once again while a
    # full batch says there is a backlog).
    retention_interval: float = 300.0
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
    # Metrics (referrals.metrics).  The bearer token Prometheus must present (or, like
    # every credential, REFERRALS_METRICS_TOKEN_FILE: a mounted secret holding it);
    # without one the app's /metrics answers 404.  The worker and the sealer serve theirs
    # on a port of their own (``--metrics-port``, default this one; unset: none), on
    # this address.
    metrics_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # gunicorn's multiprocess mode: prometheus_client's own PROMETHEUS_MULTIPROC_DIR
    # (deploy/gunicorn.conf.py sets it).  Set, /metrics adds up every worker's values.
    metrics_multiprocess_dir: Path | None = None
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

    def resolved_metrics_token(self) -> str | None:
        """The metrics token; None: metrics are off.  One read from a file arrives here
        already read (``_with_secret_files``), so the same rule judges both."""
        token = self.metrics_token
        if token is not None and (len(token) < MIN_METRICS_TOKEN or not token.isprintable()):
            raise ConfigError(
                f"the metrics token must be at least {MIN_METRICS_TOKEN} printable characters"
            )
        return token

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
        environ = _with_secret_files(environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"REFERRALS_{f.name.upper()}"
            if f.name in ("extra", "metrics_multiprocess_dir") or key not in environ:
                continue
            values[f.name] = _parse(f.name, environ[key])
        # prometheus_client reads this variable itself; it is read here too so that the
        # app knows to add up the files of every gunicorn worker.
        multiprocess = environ.get(MULTIPROCESS_VARIABLE, "").strip()
        if multiprocess:
            values["metrics_multiprocess_dir"] = Path(multiprocess)
        settings = cls(**values)
        if "dev_tokens" not in values and settings.is_production:
            # Production never defaults to accepting development tokens.
            settings = replace(settings, dev_tokens=False)
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A token a scraper is given, not a password a person types: long enough not to guess.
MIN_METRICS_TOKEN = 32
# Settings that hold a credential may also be read from a file named by the same
# variable with ``_FILE`` appended (``REFERRALS_DATABASE_URL_FILE=/run/secrets/db-url``):
# Compose and Kubernetes mount secrets as files, and a file keeps the value out of the
# process environment, which `docker inspect` and /proc/<pid>/environ show.  The keyring
# and the signing key have their own file settings (REFERRALS_KEYRING_FILE,
# REFERRALS_AUDIT_SIGNING_KEY_FILE), checked for their mode when loaded.
SECRET_FILE_SETTINGS = (
    "database_url",
    "sealer_database_url",
    "web_client_secret",
    "web_secret_key",
    "metrics_token",
)
# A secret file is a line or two, never a document: refuse anything bigger unread.
_SECRET_FILE_LIMIT = 64 * 1024


def _with_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` with each ``REFERRALS_X_FILE`` of a credential setting read into
    ``REFERRALS_X`` (one trailing newline dropped).  Both set is refused: which one wins
    would be a guess.  The messages name the variable and the path, never the content."""
    resolved = dict(environ)
    for name in SECRET_FILE_SETTINGS:
        key = f"REFERRALS_{name.upper()}"
        path = environ.get(f"{key}_FILE", "").strip()
        if not path:
            continue
        if key in environ:
            raise ConfigError(f"set {key} or {key}_FILE, not both")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_SECRET_FILE_LIMIT + 1)
        except OSError as exc:
            raise ConfigError(f"{key}_FILE: cannot read {path} ({exc.strerror})") from None
        if len(raw) > _SECRET_FILE_LIMIT:
            raise ConfigError(f"{key}_FILE: {path} is larger than a secret can be")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{key}_FILE: {path} is not UTF-8 text") from None
        value = text.removesuffix("\n").removesuffix("\r")
        if not value.strip():
            # An empty mount is a deployment mistake, never "this credential is unset".
            raise ConfigError(f"{key}_FILE: {path} is empty")
        resolved[key] = value
    return resolved


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
            | "retention_batch_size"
            | "audit_checkpoint_events"
        ):
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(f"{key} must be a whole number of at least 1")
            return int(raw)
        case (
            "retention_rejected_days"
            | "retention_cancelled_days"
            | "retention_entered_in_error_days"
            | "retention_completed_days"
            | "retention_failed_days"
            | "retention_draft_days"
        ):
            # At most 100 years: a mistyped extra digit should not keep data for ever.
            if not raw.isdigit() or not 1 <= int(raw) <= 36500:
                raise ConfigError(f"{key} must be a whole number of days from 1 to 36500")
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
            | "retention_interval"
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
        case "statistics_min_cell":
            if not raw.isdigit() or int(raw) < 2:
                raise ConfigError(f"{key} must be a whole number of at least 2")
            return int(raw)
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
        case "metrics_host":
            # Empty would mean every interface: say so explicitly (0.0.0.0, ::) instead.
            if not raw:
                raise ConfigError(f"{key} must name an address, such as 127.0.0.1")
            return raw
        case "metrics_port":
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ConfigError(f"{key} must be a port number (1-65535)")
            return int(raw)
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
                "metrics_token",
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
