"""Tables.  Coarse fields stay plaintext (routing and statistics need them); every
personal value is a ``sealed`` column (see referrals/db/base.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.db.base import (
    Base,
    code,
    optional_timestamp,
    sealed,
    slug,
    timestamp,
    uuid_pk,
)


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[slug] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[code]
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # A unit's endpoint may be registered before its system is ready to receive.
    webhook_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The Standard Webhooks signing secret, sealed under the KEK ``webhook_secret_kek_id``
    # (a credential, not personal data, but no less secret at rest).
    webhook_secret: Mapped[sealed]
    webhook_secret_kek_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp]


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        # Inbox and outbox listings: keyset pagination over (created_at, id) per unit.
        Index("ix_referrals_receiving_unit_created", "receiving_unit_id", "created_at", "id"),
        Index("ix_referrals_sending_unit_created", "sending_unit_id", "created_at", "id"),
        # The worker's escalation scan: requested referrals past their deadline.
        Index("ix_referrals_status_due", "status", "due_at"),
        # A staff member's caseload at a unit: what a unit lead's reassignment moves.
        Index("ix_referrals_receiving_unit_assignee", "receiving_unit_id", "assignee"),
    )

    id: Mapped[uuid_pk]
    # Optimistic concurrency: every UPDATE says "WHERE version = <the one I read>", so
    # two simultaneous transitions cannot both win.  Also the ETag.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[code]
    sending_unit_id: Mapped[slug] = mapped_column(ForeignKey("units.id"))
    receiving_unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    created_by: Mapped[str] = mapped_column(String(500))
    priority: Mapped[code]
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    legal_basis: Mapped[str | None] = mapped_column(String(40))
    consent_given_by: Mapped[str | None] = mapped_column(String(40))
    consent_given_at: Mapped[optional_timestamp]
    district: Mapped[str | None] = mapped_column(String(64))
    age_at_submission: Mapped[int | None]
    # Who at the receiving unit handles it: the OIDC subject of a known staff member of
    # that unit (``UnitStaff``) under the issuer ``assignee_issuer``.  A value without an
    # issuer is a free-text name from before revision 0009, kept as it was.
    assignee: Mapped[str | None] = mapped_column(String(200))
    assignee_issuer: Mapped[str | None] = mapped_column(String(500))
    outcome_code: Mapped[str | None] = mapped_column(String(40))
    reason_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp]
    submitted_at: Mapped[optional_timestamp]
    due_at: Mapped[optional_timestamp]
    # The routing decision on submit: which rule of which rule-set version chose the unit.
    routing_rule_id: Mapped[str | None] = mapped_column(String(64))
    routing_ruleset_version: Mapped[int | None]
    # Two-phase disclosure: the receiving unit that has seen identity and free text (on
    # accept, or by a reveal before deciding).  A redirect clears it.
    identity_disclosed_to: Mapped[str | None] = mapped_column(String(64))
    # When the sender recorded that the consent this referral rests on was withdrawn.
    consent_withdrawn_at: Mapped[optional_timestamp]

    # Envelope encryption: this referral's data key, wrapped by the key-encryption key
    # ``kek_id``.  Erasure destroys it (crypto-shredding), and with it every sealed field.
    dek_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kek_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Blind index of the normalised personal number, for exact-match search.
    personal_number_index: Mapped[str | None] = mapped_column(String(64), index=True)
    erased_at: Mapped[optional_timestamp]

    subject_name: Mapped[sealed]
    personal_number: Mapped[sealed]
    birth_date: Mapped[sealed]
    phone: Mapped[sealed]
    guardian_name: Mapped[sealed]
    guardian_phone: Mapped[sealed]
    narrative: Mapped[sealed]
    place_met: Mapped[sealed]

    events: Mapped[list[TimelineEvent]] = relationship(
        back_populates="referral",
        cascade="all, delete-orphan",
        order_by="TimelineEvent.position",
    )
    notes: Mapped[list[Note]] = relationship(
        back_populates="referral", cascade="all, delete-orphan", order_by="Note.created_at"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it)


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (UniqueConstraint("referral_id", "position"),)

    id: Mapped[uuid_pk]
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    # 1, 2, 3 … per referral: events written in one request share "at" but not order.
    position: Mapped[int]
    at: Mapped[timestamp]
    action: Mapped[code]
    actor: Mapped[str] = mapped_column(String(500))
    actor_unit: Mapped[str | None] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(40))
    to_status: Mapped[code]
    from_unit: Mapped[str | None] = mapped_column(String(64))
    to_unit: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(40))
    outcome_code: Mapped[str | None] = mapped_column(String(40))
    reason_text: Mapped[sealed]
    # Set when a routing rule chose ``to_unit`` (submit), so the timeline says why.
    rule_id: Mapped[str | None] = mapped_column(String(64))
    ruleset_version: Mapped[int | None]
    # An assignment (accept, assign, a unit lead's reassignment): the subjects before and
    # after, under the actor's issuer; shown to the receiving unit only.
    previous_assignee: Mapped[str | None] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(200))

    referral: Mapped[Referral] = relationship(back_populates="events")


class UnitStaff(Base):
    """A caseworker or unit lead seen acting for a receiving unit: who a referral of that
    unit may be assigned to.  The service has no staff directory; the identity provider
    vouches for role and unit in every token, and this table remembers whom it vouched
    for.  Recorded when such a caller acts on the unit's referrals (inbox, a referral, an
    assignment)."""

    __tablename__ = "unit_staff"

    unit_id: Mapped[slug] = mapped_column(ForeignKey("units.id"), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The receiving role the token carried when last seen (caseworker or unit_lead).
    role: Mapped[code]
    first_seen_at: Mapped[timestamp]
    last_seen_at: Mapped[timestamp]


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[uuid_pk]
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    created_at: Mapped[timestamp]
    author: Mapped[str] = mapped_column(String(500))
    author_unit: Mapped[str | None] = mapped_column(String(64))
    author_side: Mapped[code]
    visibility: Mapped[code]
    text: Mapped[sealed]

    referral: Mapped[Referral] = relationship(back_populates="notes")


class IdempotencyKey(Base):
    """Remembers which referral a create request with an ``Idempotency-Key`` made.

    Only a digest of the request body is kept, never the body itself."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key"),)

    id: Mapped[uuid_pk]
    actor: Mapped[str] = mapped_column(String(500))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    created_at: Mapped[timestamp]


class AuditEvent(Base):
    """One request that touched a referral, a unit, a key or the audit trail: who, what,
    which target, with what outcome.  Insert-only; never personal data, tokens or search
    terms.  Its place in the hash chain is recorded separately (``AuditSeal``), so that
    sealing never has to UPDATE an event."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

    id: Mapped[uuid_pk]
    recorded_at: Mapped[timestamp] = mapped_column(index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    # Verified actors come from a validated token; unverified ones are what a refused
    # token claimed (recorded for 401s, never trusted).
    actor_verified: Mapped[bool]
    actor_issuer: Mapped[str | None] = mapped_column(String(500))
    actor_subject: Mapped[str | None] = mapped_column(String(500), index=True)
    client_id: Mapped[str | None] = mapped_column(String(500))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    unit: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    http_status: Mapped[int]
    # Break-the-glass reason code when the access was outside the actor's normal scope.
    purpose: Mapped[str | None] = mapped_column(String(64), index=True)
    # An operator's stated reason for a command-line change (a code or a ticket
    # reference, never free text about a person); hashed only when set (revision 0007).
    reason: Mapped[str | None] = mapped_column(String(64))


class AuditEventTarget(Base):
    """A referral an event disclosed besides its own target: every item of a list, every
    match of a search, every possible duplicate named on submit.  Written with its event
    in the same transaction, hashed with it, insert-only like it."""

    __tablename__ = "audit_event_targets"
    __table_args__ = (Index("ix_audit_event_targets_referral", "referral_id"),)

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audit_events.id"), primary_key=True)
    referral_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class AuditSeal(Base):
    """An event's position in the one hash chain: hash_n = SHA-256(hash_{n-1} || event_n)."""

    __tablename__ = "audit_seals"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audit_events.id"), unique=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_at: Mapped[timestamp]
    # Set by the sealer when the event's recorded_at was not close to when it first saw
    # it ("backdated", "future"); hashed with the event when set (revision 0006).
    flag: Mapped[str | None] = mapped_column(String(16))


class AuditPending(Base):
    """The sealer's queue: an event not sealed yet.  Filled by a trigger on
    ``audit_events`` (revision 0011) in the event's own transaction, emptied by the sealer
    in the transaction that seals the event, so a sealer round reads only new events."""

    __tablename__ = "audit_pending"
    __table_args__ = (Index("ix_audit_pending_order", "recorded_at", "event_id"),)

    # No foreign key: see revision 0011 (a TRUNCATE of the events must meet the
    # append-only trigger, not the key).
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recorded_at: Mapped[timestamp]


class AuditCheckpoint(Base):
    """A signed (Ed25519) statement of the chain head at ``seq``."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    head: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[timestamp]
    previous: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class AuditRefusalTally(Base):
    """How many requests one unverified claimed actor had refused, per action, status and
    minute.  The first of them is a full audit event (``event_id``, in the hash chain);
    the rest only count here, so a flood of refused tokens adds one row a minute, not one
    a request.  The count is not hash-chained: it measures volume, and a refused request
    changed and disclosed nothing."""

    __tablename__ = "audit_refusal_tallies"
    __table_args__ = (UniqueConstraint("window_start", "claim_key"),)

    id: Mapped[uuid_pk]
    window_start: Mapped[timestamp]
    # SHA-256 of the claimed issuer, subject, action and status: a fixed-size key.
    claim_key: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audit_events.id"), unique=True)
    count: Mapped[int]


class BreakGlassGrant(Base):
    """Emergency read access of one actor to one referral outside their unit, until
    ``expires_at``; every use is audited with the reason and listed for review."""

    __tablename__ = "break_glass_grants"
    __table_args__ = (Index("ix_break_glass_grants_actor_referral", "actor", "referral_id"),)

    id: Mapped[uuid_pk]
    actor: Mapped[str] = mapped_column(String(500))
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[timestamp]
    expires_at: Mapped[timestamp]


class RoutingRuleSet(Base):
    """One version of the routing rules, whole.  Versions are only ever added: every
    change makes a new one, so a referral's stored decision (rule id, version) can always
    be looked up as it was."""

    __tablename__ = "routing_rulesets"

    # The primary key makes two simultaneous edits collide instead of both winning.
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[timestamp]
    created_by: Mapped[str] = mapped_column(String(500))
    # [{"id", "position", "unit", "match"}]: see referrals/domain/routing.py.
    rules: Mapped[list[dict[str, object]]] = mapped_column(JSON)


class OutboxMessage(Base):
    """A webhook to deliver to one unit, written in the transaction of the change it
    announces (the transactional outbox).  The payload names an event type, a referral
    id, a status and a time: never personal data."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_created", "created_at", "id"),
    )

    # Also the ``webhook-id``: the same on every attempt, so receivers can deduplicate.
    id: Mapped[uuid_pk]
    created_at: Mapped[timestamp]
    event_type: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    unit_id: Mapped[slug] = mapped_column(ForeignKey("units.id"), index=True)
    payload: Mapped[str] = mapped_column(Text)
    # pending -> delivered | dead | skipped (the unit has no enabled endpoint)
    state: Mapped[code]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[timestamp]
    # A worker's claim: until this time, and under this token, the message is its own.
    locked_until: Mapped[optional_timestamp]
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_attempt_at: Mapped[optional_timestamp]
    # A short, fixed description ("HTTP 500", "timeout"): never a response body.
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[optional_timestamp]


class DeadlineNotice(Base):
    """The overdue escalation of one referral, for one deadline at one receiving unit, was
    written to the outbox.

    The primary key is what makes it "once": two workers escalating the same referral at
    the same moment collide on it, and one of them rolls back.  The unit is part of it so
    that a unit an overdue referral is redirected to is told, too."""

    __tablename__ = "deadline_notices"

    referral_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True
    )
    due_at: Mapped[timestamp] = mapped_column(primary_key=True)
    unit_id: Mapped[slug] = mapped_column(primary_key=True)
    created_at: Mapped[timestamp]


class WebSession(Base):
    """A browser's session with the web front end (referrals/web/sessions.py).

    Keyed by the SHA-256 of the cookie's random value: a database reader cannot turn a
    row back into a working cookie.  Everything else the session holds (tokens, the
    sign-in state, a form kept across an expired session) is one AEAD blob sealed under
    the keyring's KEK with the row id as associated data."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[timestamp]
    last_seen_at: Mapped[timestamp]
    # Absolute end, whatever the activity.
    expires_at: Mapped[timestamp] = mapped_column(index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(64))


class LegalHold(Base):
    """A legal hold on a referral: retention erasure (and ``referrals erase``) leaves it
    alone until the hold is released.  Rows are never deleted: a released hold keeps who
    placed and released it, when, and why (a code)."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_referral_released", "referral_id", "released_at"),)

    id: Mapped[uuid_pk]
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"))
    reason_code: Mapped[code]
    placed_by: Mapped[str] = mapped_column(String(500))
    placed_at: Mapped[timestamp]
    released_by: Mapped[str | None] = mapped_column(String(500))
    released_at: Mapped[optional_timestamp]
