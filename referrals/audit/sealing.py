"""The sealer, checkpoints and the verifier: the hash chain as stored in the database.

Requests only INSERT audit events; they never wait for the chain.  The sealer gives
committed events their places in order, under a PostgreSQL advisory lock, so any number
of app instances and sealer processes produce exactly one chain.  (On SQLite, a second
sealer's insert of the same sequence number fails and it simply tries again later.)
Sealing and checkpoints only INSERT, which is all the audit tables allow.

Whoever may INSERT events (the application's role) can INSERT one with any time and actor.
The sealer cannot tell who wrote a row, but it can tell when a row claims a time the chain
has already passed: an event whose ``recorded_at`` lies further than the tolerance before
the newest sealed (unflagged) event, or after the sealer's clock, is sealed with a flag.
The flag is hashed with the event, so it cannot be removed without breaking the chain,
and the verifier lists every flagged event.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import repeat
from operator import itemgetter
from types import SimpleNamespace
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    DateTime,
    Row,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    type_coerce,
)
from sqlalchemy import cast as cast_to
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from referrals.audit import chain, disclosures
from referrals.db.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditEventTarget,
    AuditPending,
    AuditSeal,
)

# Events sealed per round (and per transaction) at most.
DEFAULT_BATCH = 1000
# Rows the verifier fetches from its cursor at a time (memory stays flat in the chain).
VERIFY_BATCH = 2000
# How far an event's recorded_at may lie before the newest sealed event (a commit that
# waited for a lock) or after the sealer's clock before it is flagged.  The same window
# the freshness check allows for late commits.
DEFAULT_TOLERANCE = timedelta(minutes=5)
# The key under which a flag joins the hashed body (absent when unflagged, so every
# event sealed before revision 0006 verifies unchanged).
FLAG_FIELD = "sealer_flag"
BACKDATED = "backdated"
FUTURE = "future"
# pg_advisory_xact_lock key: "referral" in ASCII, so it reads as ours in pg_locks.
SEALER_LOCK = 0x726566657272616C


def body(event: AuditEvent | Row[Any], disclosed: Collection[uuid.UUID] = ()) -> dict[str, Any]:
    """What is hashed of an event: every column and the referrals it disclosed
    (``disclosures.of_events``), nothing derived."""
    fields = {
        "id": event.id,
        "recorded_at": event.recorded_at,
        "request_id": event.request_id,
        "actor_verified": event.actor_verified,
        "actor_issuer": event.actor_issuer,
        "actor_subject": event.actor_subject,
        "client_id": event.client_id,
        "roles": list(event.roles),
        "unit": event.unit,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": event.outcome,
        "http_status": event.http_status,
        "purpose": event.purpose,
    }
    # Added by revision 0007, and hashed only when present, so that the events sealed
    # before it still verify; removing or adding either later changes the hash.
    if event.reason is not None:
        fields["reason"] = event.reason
    if disclosed:
        fields["disclosed"] = sorted(str(referral_id) for referral_id in disclosed)
    return fields


def hashed(
    event: AuditEvent | Row[Any], flag: str | None, disclosed: Collection[uuid.UUID] = ()
) -> dict[str, Any]:
    """The body as sealed: the event's columns and disclosures, and the sealer's flag when
    there is one."""
    fields = body(event, disclosed)
    if flag is not None:
        fields[FLAG_FIELD] = flag
    return fields


EVENTS = cast(Table, AuditEvent.__table__)
SEALS = cast(Table, AuditSeal.__table__)
PENDING = cast(Table, AuditPending.__table__)
TARGETS = cast(Table, AuditEventTarget.__table__)
# For Core selects: the ORM's per-object cost was most of the sealer's and the verifier's
# time.
_EVENT_NAMES = (
    "id",
    "recorded_at",
    "request_id",
    "actor_verified",
    "actor_issuer",
    "actor_subject",
    "client_id",
    "roles",
    "unit",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "http_status",
    "purpose",
    "reason",
)
# Every column ``body`` hashes, ``roles`` as its stored JSON text (``encode`` parses each
# distinct value once instead of the driver parsing every row's).
ROLES_TEXT = tuple(
    cast_to(EVENTS.c[name], Text).label(name) if name == "roles" else EVENTS.c[name]
    for name in _EVENT_NAMES
)

# The verifier's on PostgreSQL: ``recorded_at`` as the driver gives it (aware, in the
# session's zone; the encoder converts it to UTC) without the column type's per-row
# conversion.  SQLite stores naive UTC, so it keeps ``ROLES_TEXT``.
RAW_TIME = tuple(
    type_coerce(column, DateTime(timezone=True)).label("recorded_at")
    if column.name == "recorded_at"
    else column
    for column in ROLES_TEXT
)


class _Irregular(Exception):
    """A stored value the fast encoder does not take: the general path decides."""


_string = json.encoder.encode_basestring  # the C encoder; non-ASCII kept as it is


def _text(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is not str:
        raise _Irregular
    return _string(value)


def encode(
    event: Row[Any], flag: str | None, disclosed: Collection[uuid.UUID], seq: int
) -> bytes | str:
    """``chain.canonical_json({**hashed(event, flag, disclosed), "seq": seq})`` of a row
    with ``ROLES_TEXT``: the same bytes, built directly (keys in sorted order) for the
    column types the table stores.  ``roles`` is the column's stored JSON text (select
    ``ROLES_TEXT``), parsed once per distinct value.  Anything else (a
    ``roles`` value that is not a list of strings, a naive time) takes the general path.
    A body that cannot be hashed returns ``chain.UNHASHABLE`` (the verifier's "altered"
    detail)."""
    try:
        return _encode_fast(event, flag, disclosed, seq)
    except (_Irregular, TypeError):  # TypeError: an unhashable value met the memo
        pass
    values = {name: getattr(event, name) for name in _EVENT_NAMES}
    try:
        values["roles"] = json.loads(event.roles)
    except (TypeError, ValueError):
        return chain.UNHASHABLE
    event = SimpleNamespace(**values)  # type: ignore[assignment]
    try:
        return chain.canonical_json({**hashed(event, flag, disclosed), chain.SEQ_FIELD: seq})
    except TypeError:
        return chain.UNHASHABLE


# The roles column's stored JSON text -> its canonical fragment (None: irregular).  Few
# distinct role sets exist, so this stays small; bounded all the same.
_ROLES: dict[str, str | None] = {}
_ROLES_LIMIT = 4096


def _roles(value: str) -> str:
    fragment = _ROLES.get(value, _MISSING)
    if fragment is _MISSING:
        try:
            fragment = _roles_list(json.loads(value))
        except (_Irregular, ValueError):
            fragment = None
        if len(_ROLES) < _ROLES_LIMIT:
            _ROLES[value] = fragment
    if fragment is None:
        raise _Irregular
    return cast(str, fragment)


_MISSING: Any = object()


def _roles_list(value: object) -> str:
    if type(value) is not list:
        raise _Irregular
    return "[" + ",".join([_text(role) for role in value]) + "]"


# Encoded text fields (``None`` -> ``null``) of the columns with few distinct values
# (actions, units, issuers, ...): one dict lookup in C instead of a call per field.
# Bounded; a value not yet in it is encoded by ``_text`` (which also refuses non-strings).
_TEXTS: dict[str | None, str] = {None: "null"}
_TEXTS_LIMIT = 4096


def _common(value: object) -> str:
    encoded: str | None = _TEXTS.get(cast(str, value))
    if encoded is None:
        encoded = _text(value)
        if len(_TEXTS) < _TEXTS_LIMIT:
            _TEXTS[cast(str, value)] = encoded
    return encoded


# The canonical form of a row, keys in sorted order, as one template.
_TEMPLATE = (
    '{"action":%s,"actor_issuer":%s,"actor_subject":%s,"actor_verified":%s,"client_id":%s%s'
    ',"http_status":%d,"id":"%s","outcome":%s,"purpose":%s%s,"recorded_at":"%sZ"'
    ',"request_id":%s,"roles":%s%s,"seq":%d,"target_id":%s,"target_type":%s,"unit":%s}'
)


def _encode_fast(
    event: Row[Any], flag: str | None, disclosed: Collection[uuid.UUID], seq: int
) -> bytes:
    return encode_fields(
        flag,
        disclosed,
        seq,
        event.id,
        event.recorded_at,
        event.request_id,
        event.actor_verified,
        event.actor_issuer,
        event.actor_subject,
        event.client_id,
        event.roles,
        event.unit,
        event.action,
        event.target_type,
        event.target_id,
        event.outcome,
        event.http_status,
        event.purpose,
        event.reason,
    )


def encode_fields(
    flag: str | None,
    disclosed: Collection[uuid.UUID],
    seq: int,
    identifier: Any,
    moment: Any,
    request_id: Any,
    verified: Any,
    issuer: Any,
    subject: Any,
    client_id: Any,
    roles: Any,
    unit: Any,
    action: Any,
    target_type: Any,
    target_id: Any,
    outcome: Any,
    status: Any,
    purpose: Any,
    reason: Any,
) -> bytes:
    """The fast path of ``encode``, from the columns of ``ROLES_TEXT`` in their order
    (the verifier passes a row's values as they are unpacked).  Raises ``_Irregular``
    (or ``TypeError``) for anything it does not take; ``encode`` then decides."""
    if (
        type(verified) is not bool
        or type(status) is not int
        or moment.tzinfo is None
        or type(identifier) is not uuid.UUID
    ):
        raise _Irregular
    listed = (
        ',"disclosed":["' + '","'.join(sorted([str(each) for each in disclosed])) + '"]'
        if disclosed
        else ""
    )
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    common = _TEXTS.get
    return (
        _TEMPLATE
        % (
            common(action) or _common(action),
            common(issuer) or _common(issuer),
            common(subject) or _common(subject),
            "true" if verified else "false",
            common(client_id) or _common(client_id),
            listed,
            status,
            identifier,
            common(outcome) or _common(outcome),
            common(purpose) or _common(purpose),
            "" if reason is None else ',"reason":' + _text(reason),
            # isoformat of a UTC time ends "+00:00": the canonical form ends "Z" instead.
            moment.isoformat(timespec="microseconds")[:-6],
            _text(request_id),
            _roles(roles),
            "" if flag is None else ',"sealer_flag":' + _text(flag),
            seq,
            _text(target_id),
            common(target_type) or _common(target_type),
            common(unit) or _common(unit),
        )
    ).encode()


# -- the verifier's batches on PostgreSQL -----------------------------------------------------

# The verifier's on PostgreSQL: ``id`` and ``recorded_at`` as text the server formats, the
# other columns as ``ROLES_TEXT``, and the referrals the event disclosed (their ids' text,
# in no particular order: the verifier sorts them).  The id and the time are fixed-width and
# one-to-one: the UUID's canonical text (what ``str`` gives) and the UTC time to the
# microsecond (what ``isoformat`` gives, less its offset), so the driver builds no UUID and
# no datetime per row only for them to be turned back into the same text.  Nothing else is
# left to the server: the verifier still escapes every text value itself and hashes every
# byte, so a changed row still fails its hash.  A time outside years 1 to 9999 comes out
# NULL (no sealer can have hashed one: Python has no such datetime), so an era cannot
# vanish in "YYYY" (44 BC would print as 0044).  Used only while the columns have the types
# this formatting is exact for (``_server_text_is_exact``).
_UTC_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS.US'
_recorded = EVENTS.c.recorded_at
_NAMED = (
    select(
        TARGETS.c.event_id,
        func.array_agg(cast_to(TARGETS.c.referral_id, Text)).label("referrals"),
    )
    .group_by(TARGETS.c.event_id)
    .subquery("named")
)
SERVER_TEXT = (
    *(
        cast_to(column, Text).label("id")
        if column.name == "id"
        else case(
            (
                and_(
                    _recorded >= literal_column("'0001-01-01 00:00:00+00'::timestamptz"),
                    _recorded < literal_column("'10000-01-01 00:00:00+00'::timestamptz"),
                ),
                func.to_char(func.timezone("UTC", _recorded), _UTC_TEXT),
            )
        ).label("recorded_at")
        if column.name == "recorded_at"
        else column
        for column in ROLES_TEXT
    ),
    # A list as the driver gives it (NullType: no per-row conversion by SQLAlchemy).
    type_coerce(_NAMED.c.referrals, NullType()).label("disclosed"),
)
_EXACT_TYPES = {"id": "uuid", "recorded_at": "timestamp with time zone"}


def _server_text_is_exact(session: Session) -> bool:
    """Do ``id`` and ``recorded_at`` still have the types ``SERVER_TEXT`` formats exactly?
    (Someone who can alter the table could change them; the typed columns are then read.)"""
    found = session.execute(
        text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = CAST(:table AS regclass) AND attname IN ('id', 'recorded_at')"
            " AND NOT attisdropped"
        ),
        {"table": EVENTS.name},
    ).all()
    return dict(found) == _EXACT_TYPES


# The canonical form of a row of ``SERVER_TEXT``: as ``_TEMPLATE``, with the id escaped
# like any text (the canonical form of its UUID needs no escape, so the same bytes).
_BATCH_TEMPLATE = _TEMPLATE.replace('"id":"%s"', '"id":%s')
_BOOLEANS = {True: "true", False: "false"}  # the column's type is checked first: 1 is not True
# Fragments of the optional fields, by value (None: absent); bounded like ``_TEXTS``.
_FLAGS: dict[str | None, str] = {None: ""}
_REASONS: dict[str | None, str] = {None: ""}


def chain_batch(rows: Sequence[Sequence[Any]], seq: int, previous: bytes) -> bytes | None:
    """The chain hash after ``rows`` (``seq``, ``hash``, ``flag`` and ``SERVER_TEXT``, the
    first at ``seq`` after the chain hash ``previous``), or None if any row is not where it
    should be, does not match its hash or holds a value this does not take: the verifier
    then goes through the batch row by row (``encode_fields``, ``encode``), which names
    the first problem.

    The batch's columns are encoded one at a time (a C-level map or a memo per column, no
    call per field and row), so the only Python loop per row is the hashing itself."""
    try:
        return _chain_batch(rows, seq, previous)
    except (_Irregular, TypeError):
        return None


def _chain_batch(rows: Sequence[Sequence[Any]], seq: int, previous: bytes) -> bytes | None:
    (
        seqs,
        stored,
        flags,
        ids,
        times,
        request_ids,
        verified,
        issuers,
        subjects,
        clients,
        roles,
        units,
        actions,
        target_types,
        target_ids,
        outcomes,
        statuses,
        purposes,
        reasons,
        disclosed,
    ) = zip(*rows, strict=True)
    count = len(seqs)
    if (
        seqs != tuple(range(seq, seq + count))
        or None in times
        or not set(map(type, verified)) <= {bool}
        or not set(map(type, statuses)) <= {int}
    ):
        return None
    listed = (
        repeat("", count)
        if disclosed.count(None) == count
        else ["" if not referrals else _listed(referrals) for referrals in disclosed]
    )
    encoded = map(
        _BATCH_TEMPLATE.__mod__,
        zip(
            _memoised(actions, _TEXTS, _text),
            _memoised(issuers, _TEXTS, _text),
            _memoised(subjects, _TEXTS, _text),
            map(_BOOLEANS.__getitem__, verified),
            _memoised(clients, _TEXTS, _text),
            listed,
            statuses,
            _escaped(ids),
            _memoised(outcomes, _TEXTS, _text),
            _memoised(purposes, _TEXTS, _text),
            _memoised(reasons, _REASONS, _reason),
            times,
            _escaped(request_ids),
            _memoised(roles, _ROLES, _roles_text),  # type: ignore[arg-type]
            _memoised(flags, _FLAGS, _flag),
            seqs,
            _escaped(target_ids),
            _memoised(target_types, _TEXTS, _text),
            _memoised(units, _TEXTS, _text),
            strict=True,
        ),
    )
    sha256 = hashlib.sha256
    for canonical, expected in zip(map(str.encode, encoded), stored, strict=True):
        previous = sha256(previous + canonical).digest()
        if previous != expected:
            return None
    return previous


def _memoised(
    values: tuple[Any, ...], memo: dict[Any, str], encode: Callable[[Any], str]
) -> list[str]:
    """``encode`` of every value, from ``memo`` where it is (one C-level map when all are)."""
    encoded: list[str | None] = list(map(memo.get, values))
    if None not in encoded:
        return cast(list[str], encoded)
    for index, value in enumerate(values):
        if encoded[index] is None:
            fragment = memo.get(value)
            if fragment is None:
                fragment = encode(value)  # raises _Irregular for a value it does not take
                if len(memo) < _TEXTS_LIMIT:
                    memo[value] = fragment
            encoded[index] = fragment
    return cast(list[str], encoded)


def _escaped(values: tuple[Any, ...]) -> list[str]:
    """The columns with a new value in nearly every row (no memo): escaped in C (which
    raises ``TypeError`` for a value that is not text)."""
    try:
        return list(map(_string, values))
    except TypeError:  # a value that is not text (raises again, below) or NULL
        return ["null" if value is None else _string(value) for value in values]


def _listed(referrals: Sequence[str]) -> str:
    return ',"disclosed":[' + ",".join(map(_string, sorted(referrals))) + "]"


def _reason(value: object) -> str:
    return ',"reason":' + _text(value)


def _flag(value: object) -> str:
    return ',"sealer_flag":' + _text(value)


def _roles_text(value: object) -> str:
    if type(value) is not str:
        raise _Irregular
    return _roles(value)


def _typed(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row of ``SERVER_TEXT`` as ``RAW_TIME`` gives it (the id and time typed, without
    the disclosures), for the row-by-row path (a time the server would not format: None)."""
    seq, stored, flag, identifier, moment, *rest, _ = row
    try:
        parsed = uuid.UUID(identifier)
    except (TypeError, ValueError):
        parsed = None
    if parsed is not None and str(parsed) == identifier:
        identifier = parsed
    if moment is not None:
        moment = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return (seq, stored, flag, identifier, moment, *rest)


def flag_for(
    recorded_at: datetime, reference: datetime | None, now: datetime, tolerance: timedelta
) -> str | None:
    """Is this time close to when the sealer first sees the event?  ``reference`` is the
    recorded_at of the newest unflagged sealed event: an honest event committed after the
    sealer last looked cannot be much older than that, however long the sealer was away."""
    if recorded_at > now + tolerance:
        return FUTURE
    if reference is not None and recorded_at < reference - tolerance:
        return BACKDATED
    return None


def seal_pending(
    session: Session,
    clock: Callable[[], datetime],
    limit: int = DEFAULT_BATCH,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> int:
    """Seal up to ``limit`` committed, unsealed events, oldest first; commits; returns how many.

    The work comes from the queue (``audit_pending``, revision 0011) through its index,
    so a round costs what it seals, not what the trail holds."""
    return _seal_round(session, clock, limit, tolerance)[0]


def seal_all(
    session: Session,
    clock: Callable[[], datetime],
    limit: int = DEFAULT_BATCH,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Seal everything pending, ``limit`` events per transaction; returns how many."""
    total = 0
    while True:
        sealed, taken = _seal_round(session, clock, limit, tolerance)
        total += sealed
        if progress is not None:
            progress(sealed)
        if taken < limit:
            return total


def pending_count(session: Session) -> int:
    """Events in the sealer's queue (an index-only count)."""
    return int(session.scalar(select(func.count()).select_from(PENDING)) or 0)


def _seal_round(
    session: Session, clock: Callable[[], datetime], limit: int, tolerance: timedelta
) -> tuple[int, int]:
    """(events sealed, queue entries taken): an entry whose event already has a seal
    (possible only by a direct INSERT into the queue) is removed without a new one."""
    _lock(session)
    postgresql = session.get_bind().dialect.name == "postgresql"
    now = clock()  # after the lock: a sealer that waited must not stamp the past
    last = session.execute(
        select(AuditSeal.seq, AuditSeal.hash).order_by(AuditSeal.seq.desc()).limit(1)
    ).first()
    seq, previous = (last.seq, last.hash) if last else (0, chain.GENESIS)
    reference = session.scalar(
        select(AuditEvent.recorded_at)
        .join(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.flag.is_(None))
        .order_by(AuditSeal.seq.desc())
        .limit(1)
    )
    # The oldest entries through the queue's index first, and only then their events: a
    # plan that cannot join and sort the whole queue each round, whatever the statistics
    # say (after a burst of events, when the backlog is large, they are stale).
    oldest = (
        select(PENDING.c.event_id, PENDING.c.recorded_at)
        .order_by(PENDING.c.recorded_at, PENDING.c.event_id)
        .limit(limit)
        .subquery("oldest")
    )
    taken: Sequence[Row[Any]] = session.execute(
        select(SEALS.c.seq.label("sealed_seq"), *(RAW_TIME if postgresql else ROLES_TEXT))
        .select_from(
            oldest.join(EVENTS, EVENTS.c.id == oldest.c.event_id).outerjoin(
                SEALS, SEALS.c.event_id == oldest.c.event_id
            )
        )
        .order_by(oldest.c.recorded_at, oldest.c.event_id)
    ).all()
    pending = [row for row in taken if row.sealed_seq is None]
    named = disclosures.of_events(session, [event.id for event in pending])
    seals = _Seals(seq + 1)
    sha256 = hashlib.sha256
    for event in pending:
        seq += 1
        flag = flag_for(event.recorded_at, reference, now, tolerance)
        encoded = encode(event, flag, named.get(event.id, ()), seq)
        if isinstance(encoded, str):
            raise TypeError(f"audit event {event.id} cannot be hashed")
        digest = sha256(previous + encoded).digest()
        seals.add(event.id, digest, flag)
        previous = digest
        if flag is None:  # a flagged time must not move the reference
            reference = max(reference or event.recorded_at, event.recorded_at)
    if seals.event_ids:
        seals.insert(session, now, postgresql)
    if taken:
        done = [row.id for row in taken]
        if postgresql:
            session.connection().exec_driver_sql(_DONE_FROM_ARRAY, {"event_ids": done})
        else:
            session.execute(delete(PENDING).where(PENDING.c.event_id.in_(done)))
    session.commit()
    return len(seals.event_ids), len(taken)


# A round's seals on PostgreSQL: one INSERT of arrays the server unnests, instead of an
# executemany (one statement per seal, most of a round's time in the database); each
# seal's number is the round's first plus its place in the arrays.  Driver SQL, so that
# ``%(...)b`` sends the event ids and hashes in binary: as text, quoting and escaping
# every element was a quarter of the sealer's own time.
_SEALS_FROM_ARRAYS = (
    "INSERT INTO audit_seals (seq, event_id, hash, sealed_at, flag)"
    " SELECT %(first)s::integer + seal.place - 1, seal.event_id, seal.hash,"
    " %(sealed_at)s::timestamptz, seal.flag"
    " FROM unnest(%(event_ids)b::uuid[], %(hashes)b::bytea[], %(flags)s::varchar[])"
    " WITH ORDINALITY AS seal(event_id, hash, flag, place)"
)
# The queue entries a round took, removed in its transaction (ids in binary, as above).
_DONE_FROM_ARRAY = "DELETE FROM audit_pending WHERE event_id = ANY(%(event_ids)b::uuid[])"


class _Seals:
    """The seals of one round, consecutive from ``first``, column by column."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.event_ids: list[uuid.UUID] = []
        self.hashes: list[bytes] = []
        self.flags: list[str | None] = []

    def add(self, event_id: uuid.UUID, digest: bytes, flag: str | None) -> None:
        self.event_ids.append(event_id)
        self.hashes.append(digest)
        self.flags.append(flag)

    def insert(self, session: Session, sealed_at: datetime, postgresql: bool) -> None:
        if postgresql:
            session.connection().exec_driver_sql(
                _SEALS_FROM_ARRAYS,
                {
                    "first": self.first,
                    "sealed_at": sealed_at.astimezone(UTC),
                    "event_ids": self.event_ids,
                    "hashes": self.hashes,
                    "flags": self.flags,
                },
            )
            return
        seqs = range(self.first, self.first + len(self.event_ids))
        rows = zip(seqs, self.event_ids, self.hashes, self.flags, strict=True)
        session.execute(
            insert(SEALS),
            [
                {
                    "seq": seq,
                    "event_id": event_id,
                    "hash": digest,
                    "sealed_at": sealed_at,
                    "flag": flag,
                }
                for seq, event_id, digest, flag in rows
            ],
        )


def checkpoint(
    session: Session, key: Ed25519PrivateKey, clock: Callable[[], datetime]
) -> AuditCheckpoint | None:
    """Sign the current head, chained to the previous checkpoint; None if nothing new."""
    _lock(session)
    now = clock()
    head = session.execute(
        select(AuditSeal.seq, AuditSeal.hash).order_by(AuditSeal.seq.desc()).limit(1)
    ).first()
    if head is None:
        session.rollback()
        return None
    # Only checkpoints of positions the chain has: one planted beyond the head (possible
    # where no trigger refuses it, as on SQLite) must not stop every later checkpoint.
    # The verifier reports it.
    latest = session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.seq <= head.seq)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.seq >= head.seq:
        session.rollback()
        return None
    signed = chain.sign_checkpoint(
        key,
        chain.public_key_id(key.public_key()),
        head.seq,
        head.hash,
        now,
        latest.signature if latest else None,
    )
    row = AuditCheckpoint(**_checkpoint_fields(signed))
    session.add(row)
    session.commit()
    return row


def _checkpoint_fields(checkpoint: chain.Checkpoint | AuditCheckpoint) -> dict[str, Any]:
    """The same six fields, between the signed value and its row."""
    return {
        name: getattr(checkpoint, name)
        for name in ("seq", "head", "created_at", "previous", "key_id", "signature")
    }


# A transaction's audit event is stamped just before it commits, so an event can arrive
# after later-stamped ones were sealed, by as long as its commit waited for a lock.  The
# freshness check looks for pending events only this far behind the newest sealed one, to
# stay cheap on a long chain; the sealer itself looks everywhere.
LATE_COMMIT_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Unsigned:
    """Sealed events after the newest checkpoint: three indexed lookups, every round."""

    count: int
    oldest: datetime | None  # when the first of them was sealed
    newest_checkpoint: datetime | None


@dataclass(frozen=True)
class Backlog:
    """What waits for the sealer, as the freshness judgement needs it."""

    # recorded_at of the oldest committed event that has no seal yet
    oldest_pending: datetime | None
    unsigned: int
    oldest_unsigned: datetime | None
    newest_checkpoint: datetime | None


def unsigned(session: Session) -> Unsigned:
    head = session.scalar(select(func.max(AuditSeal.seq))) or 0
    latest = session.execute(
        select(AuditCheckpoint.seq, AuditCheckpoint.created_at)
        .where(AuditCheckpoint.seq <= head)  # as in checkpoint(): none beyond the chain
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).first()
    signed_to = latest.seq if latest else 0
    first = session.scalar(select(AuditSeal.sealed_at).where(AuditSeal.seq == signed_to + 1))
    return Unsigned(head - signed_to, first, latest.created_at if latest else None)


def oldest_pending(session: Session) -> datetime | None:
    newest_sealed = session.scalar(
        select(AuditEvent.recorded_at)
        .join(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .order_by(AuditSeal.seq.desc())
        .limit(1)
    )
    query = (
        select(func.min(AuditEvent.recorded_at))
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
    )
    if newest_sealed is not None:
        query = query.where(AuditEvent.recorded_at >= newest_sealed - LATE_COMMIT_WINDOW)
    return session.scalar(query)


def backlog(session: Session) -> Backlog:
    signed = unsigned(session)
    return Backlog(
        oldest_pending=oldest_pending(session),
        unsigned=signed.count,
        oldest_unsigned=signed.oldest,
        newest_checkpoint=signed.newest_checkpoint,
    )


def _lock(session: Session) -> None:
    """One sealer at a time across every process (held until the transaction ends)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK})


class _Prefetch:
    """Iterates ``source`` in a thread of its own, ``depth`` items ahead: the database
    reads the next batch (the thread waits on the socket without the GIL) while the caller
    hashes this one.  Only that thread touches the source (and its session) until
    ``close`` has joined it; an exception in it is raised to the caller, in order."""

    _END: Any = object()

    def __init__(self, source: Iterator[Any], depth: int = 2) -> None:
        self._source = source
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    return
                self._put((item, None))
            self._put((self._END, None))
        except BaseException as exc:  # handed to the caller, who raises it
            self._put((self._END, exc))

    def _put(self, entry: tuple[Any, BaseException | None]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Any]:
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _InTurn:
    """``_Prefetch``'s interface, fetching in the caller's thread."""

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source

    def __iter__(self) -> Iterator[Any]:
        return self._source

    def close(self) -> None:
        pass


# The verifier's rows: these three, then the event's columns (``_EVENT_NAMES``).
SEQ, HASH, FLAG, ID = 0, 1, 2, 3
_VERIFIED_NAMES = ("seq", "hash", "flag", *_EVENT_NAMES)


@dataclass(frozen=True)
class Flagged:
    """An event the sealer flagged: its time was not close to when it was first seen."""

    seq: int
    flag: str


@dataclass(frozen=True)
class Verification:
    finding: chain.Finding | None
    sealed: int
    pending: int
    checkpoints: int
    # Intact but suspect: to be reviewed (an event INSERTed with a made-up time).
    flagged: tuple[Flagged, ...] = ()

    @property
    def ok(self) -> bool:
        return self.finding is None


def verify(
    session: Session,
    public_keys: Mapping[str, Any],
    progress: Callable[[int], object] | None = None,
) -> Verification:
    """Recompute the whole chain and every checkpoint; name the first problem.

    Streams the chain from a server-side cursor (PostgreSQL) in batches of
    ``VERIFY_BATCH``: memory stays flat however long the chain.  On PostgreSQL a batch is
    checked whole (``chain_batch``) and only one that does not pass goes row by row, which
    names the first problem; elsewhere every batch goes row by row.  ``progress`` is told
    how many events each batch held."""
    checkpoints = [
        chain.Checkpoint(**_checkpoint_fields(c))
        for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
    ]
    wanted = {c.seq for c in checkpoints}
    heads: dict[int, bytes] = {}
    flagged: list[Flagged] = []
    sealed = 0

    postgresql = session.get_bind().dialect.name == "postgresql"
    # In batches (``chain_batch``) where the server formats the id and time as text; else
    # (SQLite, or columns whose type was changed) row by row only.
    batched = postgresql and _server_text_is_exact(session)
    if batched:
        # The whole chain is read, so a plan that starts fast (index scans, a nested loop
        # per row: what a cursor's planner prefers) is the slow one; and compiling it
        # (JIT) takes longer than running it.  For this transaction only.
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1"))
        session.execute(text("SET LOCAL jit = off"))
        query = select(SEALS.c.seq, SEALS.c.hash, SEALS.c.flag, *SERVER_TEXT).select_from(
            SEALS.join(EVENTS, EVENTS.c.id == SEALS.c.event_id).outerjoin(
                _NAMED, _NAMED.c.event_id == EVENTS.c.id
            )
        )
    else:
        query = select(
            SEALS.c.seq, SEALS.c.hash, SEALS.c.flag, *(RAW_TIME if postgresql else ROLES_TEXT)
        ).select_from(SEALS.join(EVENTS, EVENTS.c.id == SEALS.c.event_id))
    query = query.order_by(SEALS.c.seq)
    if batched:
        # The driver's own server-side cursor, rows as plain tuples: SQLAlchemy's Row per
        # row cost about as much as hashing the row.
        compiled = query.compile(dialect=session.get_bind().dialect)
        driver = session.connection().connection.driver_connection
        cursor = driver.cursor("referrals_verify")  # type: ignore[union-attr]
        cursor.execute(str(compiled), compiled.params)
        partitions: Iterator[Sequence[Sequence[Any]]] = iter(
            partial(cursor.fetchmany, VERIFY_BATCH), []
        )
        close = cursor.close
    else:
        rows = session.execute(
            query, execution_options={"stream_results": True, "yield_per": VERIFY_BATCH}
        )
        partitions, close = rows.partitions(), rows.close

    def batches() -> Iterator[tuple[Sequence[Sequence[Any]], Mapping[Any, Sequence[Any]]]]:
        for partition in partitions:
            # Ordered by seq, so the batch is every seal from its first seq to its last.
            # (The batched query brings each row's disclosures along.)
            first, last = partition[0][SEQ], partition[-1][SEQ]
            yield partition, {} if batched else disclosures.of_sealed(session, first, last)

    # On PostgreSQL the server works while this process hashes; SQLite runs in-process
    # (and its connections belong to their thread), so there the batches come in turn.
    fetched = _Prefetch(batches()) if postgresql else _InTurn(batches())

    def one_by_one(
        partition: Sequence[Sequence[Any]], named: Mapping[Any, Sequence[Any]]
    ) -> Iterator[tuple[int, bytes | str, bytes]]:
        """The rows of a batch for ``chain.verify_encoded``, which names the first
        problem; the flags and heads of the rows up to it."""
        for row in partition:
            if batched:
                values = _typed(row)
                disclosed = row[-1] or ()
            else:
                values = tuple(row)
                disclosed = named.get(row[ID], ())
            seq, stored, flag, identifier, moment, *fields = values
            if seq in wanted:
                heads[seq] = stored
            if flag is not None:
                flagged.append(Flagged(seq, flag))
            if moment is None:  # only a changed row has no time in years 1 to 9999
                yield seq, chain.UNHASHABLE, stored
                continue
            try:
                encoded: bytes | str = encode_fields(
                    flag, disclosed, seq, identifier, moment, *fields
                )
            except (_Irregular, TypeError):  # the general path decides
                event = SimpleNamespace(**dict(zip(_VERIFIED_NAMES, values, strict=True)))
                encoded = encode(event, flag, disclosed, seq)  # type: ignore[arg-type]
            yield seq, encoded, stored

    finding = None
    seq, previous = 1, chain.GENESIS
    try:
        for partition, named in fetched:
            sealed += len(partition)
            after = chain_batch(partition, seq, previous) if batched else None
            if after is None:
                finding = chain.verify_encoded(
                    one_by_one(partition, named), start_seq=seq, start_hash=previous
                )
                if finding is not None:
                    break
                # Every row matched its hash: the last one's is the chain's.
                seq, after = partition[-1][SEQ], partition[-1][HASH]
            else:
                seq += len(partition) - 1
                _record(partition, seq, wanted, heads, flagged)
            seq, previous = seq + 1, after
            if progress is not None:
                progress(len(partition))
    finally:
        fetched.close()  # the fetching thread is done with the session before it is used
        close()  # the verifier may stop at the first problem; free the server cursor
    if finding is None:
        finding = chain.verify_checkpoints(checkpoints, heads, public_keys)
    pending = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
    )
    return Verification(finding, sealed, int(pending or 0), len(checkpoints), tuple(flagged))


def _record(
    batch: Sequence[Sequence[Any]],
    last: int,
    wanted: set[int],
    heads: dict[int, bytes],
    flagged: list[Flagged],
) -> None:
    """The checkpointed heads and the flags of a batch that ``chain_batch`` verified (its
    seqs run without a gap up to ``last``)."""
    first = last - len(batch) + 1
    for seq in wanted.intersection(range(first, last + 1)):
        heads[seq] = batch[seq - first][HASH]
    flags = list(map(itemgetter(FLAG), batch))
    if flags.count(None) != len(flags):
        flagged.extend(Flagged(first + i, flag) for i, flag in enumerate(flags) if flag is not None)
