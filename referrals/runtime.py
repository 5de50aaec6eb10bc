"""Everything ``create_app`` builds once and every request shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError

from referrals.audit.actions import AuditAction
from referrals.audit.freshness import FreshnessLimits
from referrals.audit.group import AuditGroup
from referrals.audit.keys import AuditKeys
from referrals.audit.recorder import AuditUnavailable, PendingAudit, record, record_unverified
from referrals.audit.sealer import Sealer, SealerPolicy
from referrals.auth.authenticate import Authenticator
from referrals.auth.operator import Operator
from referrals.auth.principal import Principal, Role
from referrals.config import Settings
from referrals.db.engine import Database, connect
from referrals.db.models import AuditCheckpoint
from referrals.domain.codes import BreakGlassReason, Status
from referrals.domain.deadlines import DeadlinePolicy
from referrals.domain.retention import RetentionPolicy
from referrals.metrics.database import DatabaseCollector
from referrals.metrics.exposition import registry_for_app
from referrals.metrics.families import Metrics
from referrals.services.context import Context
from referrals.services.delivery import DeliveryPolicy
from referrals.services.errors import ServiceError
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Vault
from referrals.webhooks.destinations import Destinations

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    instance_path: Path
    database: Database
    authenticator: Authenticator
    deadlines: DeadlinePolicy
    vault: Vault
    audit_keys: AuditKeys
    clock: Clock = utc_now
    # This process's metrics, and the token a scraper must present (None: /metrics off).
    metrics: Metrics = field(default_factory=Metrics)
    metrics_token: str | None = field(default=None, repr=False)
    _exposition: CollectorRegistry | None = None
    # The sealer's own connection (REFERRALS_SEALER_DATABASE_URL), made when first needed:
    # API processes never open it.
    _sealer_database: Database | None = None
    # Reads of this process share their audit commits (referrals/audit/group.py).
    audit_group: AuditGroup = field(default_factory=AuditGroup)

    @property
    def audit_signing_key(self) -> Ed25519PrivateKey:
        """Only the sealer and the checkpoint command ask for it."""
        return self.audit_keys.signing_key()

    def sealer_database(self) -> Database:
        """The database as the sealer's role sees it; the app's own without a sealer URL."""
        if self.settings.sealer_database_url is None:
            return self.database
        if self._sealer_database is None:
            self._sealer_database = connect(self.settings.sealer_database_url)
        return self._sealer_database

    def exposition(self) -> CollectorRegistry:
        """What the app's /metrics renders: its families and the database gauges."""
        if self._exposition is None:
            database = DatabaseCollector(
                self.database, self.clock, self.freshness_limits(), self.retention_policy()
            )
            self._exposition = registry_for_app(
                self.metrics, database, self.settings.metrics_multiprocess_dir
            )
        return self._exposition

    def dispose(self) -> None:
        self.database.dispose()
        if self._sealer_database is not None:
            self._sealer_database.dispose()

    def unit_of_work(self, audit: PendingAudit | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.database.sessions, audit=audit, clock=self.clock, group=self.audit_group
        )

    def record_refusal(self, pending: PendingAudit, http_status: int) -> None:
        """The event of a request that changed nothing, in a transaction of its own.

        The API's and the web pages' error paths both end here: a refused or failed call
        is recorded the same way whichever front end it came through.  A refusal of an
        unverified (claimed) actor is counted per minute instead (``record_unverified``)."""
        for attempt in range(2):
            try:
                with self.database.sessions() as session:
                    if pending.actor is None:
                        record_unverified(session, pending, http_status, self.clock())
                    else:
                        record(session, pending, http_status, self.clock())
                    session.commit()
                pending.written = True
                return
            except IntegrityError as exc:
                # Two first refusals of one minute raced for its tally: the second counts.
                if attempt or pending.actor is not None:
                    raise AuditUnavailable("the refusal could not be recorded") from exc
            except Exception as exc:
                raise AuditUnavailable("the refusal could not be recorded") from exc

    @contextmanager
    def recorded(self, pending: PendingAudit) -> Iterator[None]:
        """An operator's change outside the database (the keyring file), audited.

        The event is inserted first, so a trail that cannot take it stops the change
        before it is made; the change is made; then the event commits.  A change that
        fails is rolled back with its event and recorded as an error instead."""
        with self.database.sessions() as session:
            try:
                record(session, pending, pending.success_status, self.clock())
            except Exception as exc:
                raise AuditUnavailable("the operator's event could not be recorded") from exc
            try:
                yield
            except Exception as exc:
                session.rollback()
                self.record_refusal(pending, exc.status if isinstance(exc, ServiceError) else 500)
                raise
            session.commit()
            pending.written = True

    def delivery_policy(self) -> DeliveryPolicy:
        s = self.settings
        return DeliveryPolicy(
            timeout=s.webhook_timeout,
            max_attempts=s.webhook_max_attempts,
            backoff_base=s.webhook_backoff_base,
            backoff_cap=s.webhook_backoff_cap,
            batch_size=s.worker_batch_size,
            lease=s.worker_lease,
            coarse_errors=s.is_production,
        )

    def retention_policy(self) -> RetentionPolicy:
        s = self.settings
        return RetentionPolicy(
            {
                Status.REJECTED: s.retention_rejected_days,
                Status.CANCELLED: s.retention_cancelled_days,
                Status.ENTERED_IN_ERROR: s.retention_entered_in_error_days,
                Status.COMPLETED: s.retention_completed_days,
                Status.FAILED: s.retention_failed_days,
                Status.DRAFT: s.retention_draft_days,
            }
        )

    def webhook_destinations(self) -> Destinations:
        """Production connects to public addresses and the operator's allow-list only."""
        s = self.settings
        return Destinations(restricted=s.is_production, allowed=s.webhook_allowed_networks)

    def sealer(
        self,
        *,
        interval: float | None = None,
        checkpoint_interval: float | None = None,
        publish: Callable[[AuditCheckpoint], None] | None = None,
    ) -> Sealer:
        """The audit sealer by the settings; the CLI's options may override two of them."""
        s = self.settings
        policy = SealerPolicy(
            interval=interval or s.audit_seal_interval,
            checkpoint_events=s.audit_checkpoint_events,
            checkpoint_interval=checkpoint_interval or s.audit_checkpoint_interval,
            time_tolerance=timedelta(seconds=s.audit_time_tolerance),
        )
        return Sealer(
            self.sealer_database().sessions,
            self.clock,
            self.audit_signing_key,
            policy,
            publish=publish,
            observer=self.metrics.sealer(),
        )

    def freshness_limits(self) -> FreshnessLimits:
        s = self.settings
        return FreshnessLimits(
            allowed_lag=s.audit_seal_lag, checkpoint_interval=s.audit_checkpoint_interval
        )

    def context(self, principal: Principal, break_glass: BreakGlassReason | None = None) -> Context:
        """What a use case needs besides its arguments, for ``principal``, now."""
        return Context(
            principal=principal,
            now=self.clock(),
            deadlines=self.deadlines,
            vault=self.vault,
            break_glass=break_glass,
            production=self.settings.is_production,
            destinations=self.webhook_destinations(),
            disclosure=self.settings.disclosure_policy,
        )


# In-process set-up (tests, benchmarks) acts as this administrator; the ``referrals``
# command names the real operator instead (``referrals.auth.operator``).
OPERATOR = Principal(issuer="urn:referrals:cli", subject="operator", roles=frozenset({Role.ADMIN}))


def operator_event(
    operator: Operator, action: AuditAction, *, reason: str | None = None
) -> PendingAudit:
    """The audit event of one command-line job, by ``operator``, for ``reason``."""
    return PendingAudit(
        action=action,
        request_id=operator.request_id,
        success_status=200,
        actor=operator.principal,
        actor_verified=operator.verified,
        reason=reason,
    )


def audit_public_keys(runtime: Runtime) -> dict[str, Ed25519PublicKey]:
    """The keys checkpoints may be signed with: the pinned ones, or the signing key's."""
    return runtime.audit_keys.public_keys()
