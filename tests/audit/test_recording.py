"""Audit recording: every API request leaves exactly one audit event, and fails closed.

SECURITY.md (Audit trail) and issue 4: each request to an endpoint of the API appends one
event in the transaction of its work (allowed, denied or failed), naming the actor, the action, the
target, the outcome, the HTTP status and the request id (also sent as ``X-Request-ID``),
and never a personal value, a token or a search term.  When the event cannot be written
the request answers 503, returns no case data and changes nothing.

The expected action tag of every endpoint is written out by hand in ``ACTIONS`` below, and
the endpoints are enumerated from the app's URL map, so a new endpoint cannot ship without
a stated tag.  Which callers are allowed or refused comes from the authorization matrix
(``tests/api/test_authorization_matrix.py``), which states the design independently.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.db.engine import Database
from referrals.db.models import AuditEvent, Note, Referral, TimelineEvent
from tests.api.helpers import Actors
from tests.api.test_authorization_matrix import (
    API,
    CALLERS,
    DELIVERIES,
    HIDDEN,
    MATRIX,
    NEW_UNIT,
    PREVIEW,
    REFERRAL,
    REFERRALS,
    REPLAY,
    ROLE,
    ROUTING_RULE,
    ROUTING_RULES,
    ROUTING_VERSIONS,
    SCOPE,
    SEARCH,
    SIDE,
    UNIT,
    UNITS,
    Callers,
    Expect,
    make_referral,
    prepare,
    request_for,
    short,
)
from tests.crypto.canary import (
    Canaries,
    Needle,
    cell_bytes,
    find,
    personal_number_forms,
    populate,
    text_forms,
)
from tests.support.witness import Witness

DEV_ISSUER = "urn:referrals:development-issuer"
DEV_CLIENT_ID = "referrals-dev-token"
AUDIT_UNAVAILABLE = "urn:referrals:problem:audit-unavailable"
PROBLEM_JSON = "application/problem+json"

# --- the expected action tag of every endpoint, stated by hand --------------------------

ACTIONS: dict[tuple[str, str], str] = {
    ("GET", REFERRALS): "referral:list",
    ("POST", REFERRALS): "referral:create",
    ("POST", SEARCH): "referral:search",
    ("GET", REFERRAL): "referral:read",
    ("PATCH", REFERRAL): "referral:update",
    ("DELETE", REFERRAL): "referral:delete",
    ("POST", f"{REFERRAL}/submit"): "referral:submit",
    ("POST", f"{REFERRAL}/accept"): "referral:accept",
    ("POST", f"{REFERRAL}/decline"): "referral:decline",
    ("POST", f"{REFERRAL}/redirect"): "referral:redirect",
    ("POST", f"{REFERRAL}/cancel"): "referral:cancel",
    ("POST", f"{REFERRAL}/start"): "referral:start",
    ("POST", f"{REFERRAL}/hold"): "referral:hold",
    ("POST", f"{REFERRAL}/resume"): "referral:resume",
    ("POST", f"{REFERRAL}/complete"): "referral:complete",
    ("POST", f"{REFERRAL}/fail"): "referral:fail",
    ("POST", f"{REFERRAL}/mark-error"): "referral:mark-error",
    ("POST", f"{REFERRAL}/reveal"): "referral:reveal",
    ("POST", f"{REFERRAL}/withdraw-consent"): "referral:withdraw-consent",
    ("POST", f"{REFERRAL}/assign"): "referral:assign",
    ("POST", f"{UNIT}/reassign"): "unit:reassign",
    ("GET", f"{REFERRAL}/events"): "referral:events",
    ("GET", f"{REFERRAL}/notes"): "note:list",
    ("POST", f"{REFERRAL}/notes"): "note:create",
    ("GET", UNITS): "unit:list",
    ("POST", UNITS): "unit:create",
    ("GET", UNIT): "unit:read",
    ("PUT", UNIT): "unit:update",
    ("GET", f"{REFERRAL}/access-log"): "referral:access-log",
    ("GET", "/audit/events"): "audit:search",
    ("GET", "/audit/verify"): "audit:verify",
    ("GET", "/audit/checkpoints"): "audit:checkpoints",
    ("GET", ROUTING_RULES): "routing:rules-read",
    ("GET", ROUTING_VERSIONS): "routing:versions",
    ("POST", ROUTING_RULES): "routing:rule-create",
    ("PUT", ROUTING_RULE): "routing:rule-update",
    ("DELETE", ROUTING_RULE): "routing:rule-delete",
    ("POST", PREVIEW): "routing:preview",
    ("GET", DELIVERIES): "delivery:list",
    ("POST", REPLAY): "delivery:replay",
    ("POST", "/privacy/subject-access"): "privacy:subject-access",
    ("GET", "/statistics"): "statistics:read",
    ("PUT", "/referrals/<uuid:referral_id>/legal-hold"): "referral:legal-hold",
    ("DELETE", "/referrals/<uuid:referral_id>/legal-hold"): "referral:legal-hold-release",
    ("GET", "/privacy/retention"): "privacy:retention",
}

# Endpoints whose only allowed role is none of the matrix's callers (a unit lead: see
# tests/api/test_caseloads.py for its own matrix), and who is allowed there.
OUTSIDE_MATRIX: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", f"{UNIT}/reassign"): ("unit_lead", "kungsholmen"),
}

# The URL argument naming the object a request acts on, and the audit target type of each
# (the unit directory's ``unit_id`` is handled on its own, with a fixed unit).
OBJECTS = {
    "<uuid:referral_id>": "referral",
    "<uuid:rule_id>": "routing-rule",
    "<uuid:delivery_id>": "delivery",
}

# What the allowed caller gets for an object id that does not exist: 404, except for an
# auditor's access log, which answers for any id (an erased or never-existing referral
# simply has an empty log) and is audited as an allowed read of that id.
UNKNOWN_REFERRAL: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", f"{REFERRAL}/access-log"): (200, "allowed"),
}

# The refusals a caller can meet, in the order the denied calls are made.
REFUSALS = (HIDDEN, SCOPE, ROLE, SIDE)

# --- actors as the audit trail should name them -----------------------------------------


@dataclass(frozen=True)
class Actor:
    verified: bool
    issuer: str | None
    subject: str | None
    client_id: str | None
    roles: tuple[str, ...]
    unit: str | None


ANONYMOUS = Actor(False, None, None, None, (), None)


def verified(caller: str) -> Actor:
    role, unit = CALLERS[caller]
    subject = f"dev-{role}" + (f"@{unit}" if unit else "")
    return Actor(True, DEV_ISSUER, subject, DEV_CLIENT_ID, (role,), unit)


def claimed(subject: str) -> Actor:
    """A refused token: what it claimed is recorded, unverified, and nothing else."""
    return Actor(False, DEV_ISSUER, subject, None, (), None)


# --- reading the audit table ------------------------------------------------------------

AUDIT = AuditEvent.__table__


def audit_rows(connection: Connection) -> dict[uuid.UUID, Mapping[str, Any]]:
    return {row["id"]: row for row in connection.execute(select(AUDIT)).mappings()}


def audit_count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(AUDIT)).scalar_one()


def send(
    client: FlaskClient,
    connection: Connection,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[TestResponse, Mapping[str, Any]]:
    """Make one request; return the response and the one audit event it added."""
    before = audit_rows(connection)
    response = client.open(url, method=method, json=json, headers=dict(headers or {}))
    after = audit_rows(connection)
    new = [row for key, row in after.items() if key not in before]
    assert len(new) == 1, (
        f"{method} {url} -> {response.status_code} added {len(new)} audit events: {new}"
    )
    assert len(after) == len(before) + 1
    return response, new[0]


def event_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "request_id": row["request_id"],
        "action": row["action"],
        "outcome": row["outcome"],
        "http_status": row["http_status"],
        "target": (row["target_type"], row["target_id"]),
        "actor": Actor(
            row["actor_verified"],
            row["actor_issuer"],
            row["actor_subject"],
            row["client_id"],
            tuple(row["roles"]),
            row["unit"],
        ),
    }


def assert_event(
    row: Mapping[str, Any],
    response: TestResponse,
    *,
    action: str,
    outcome: str,
    actor: Actor,
    target: tuple[str | None, str | None],
) -> None:
    request_id = response.headers.get("X-Request-ID")
    assert request_id, "every response carries X-Request-ID"
    assert event_fields(row) == {
        "request_id": request_id,
        "action": action,
        "outcome": outcome,
        "http_status": response.status_code,
        "target": target,
        "actor": actor,
    }


# --- tokens -----------------------------------------------------------------------------


@pytest.fixture
def callers(client: FlaskClient, dev_token: Callable[..., str]) -> Callers:
    callers = Callers(dev_token)
    created = client.post(
        f"{API}/units",
        json={"id": "faltgruppen", "name": "Fältgruppen City", "kind": "referrer"},
        headers=callers("admin"),
    )
    assert created.status_code == 201, created.json
    return callers


@dataclass(frozen=True)
class RefusedTokens:
    tampered: str
    tampered_subject: str
    expired: str
    expired_subject: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def tamper(token: str, **claims: Any) -> str:
    """The token with its payload changed and its (now wrong) signature kept."""
    header, payload, signature = token.split(".")
    changed = {**json.loads(_unb64(payload)), **claims}
    return ".".join([header, _b64(json.dumps(changed).encode()), signature])


@pytest.fixture
def refused_tokens(instance_path: Path, settings: Settings) -> RefusedTokens:
    key = devissuer.load_or_create_key(instance_path)
    tampered_subject = "uppgiven-handlaggare-4711"
    honest = devissuer.mint(
        key,
        role=Role.YOUTH_WORKER,
        unit="ungdomsjouren",
        audience=settings.oidc_audience,
        subject=tampered_subject,
    )
    # A youth worker who would like to be the receiving unit's caseworker.
    tampered = tamper(honest, roles=["caseworker"], unit="norrmalm")
    expired_subject = "utgangen-handlaggare-0815"
    expired = devissuer.mint(
        key,
        role=Role.CASEWORKER,
        unit="norrmalm",
        audience=settings.oidc_audience,
        subject=expired_subject,
        now=time.time() - 3600,
        lifetime=60,
    )
    return RefusedTokens(tampered, tampered_subject, expired, expired_subject)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the table is complete --------------------------------------------------------------


def served_endpoints(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule.removeprefix(API))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API + "/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def test_every_endpoint_has_an_expected_action(app: Flask) -> None:
    served = served_endpoints(app)
    assert {
        "endpoints without an expected action": sorted(served - set(ACTIONS)),
        "expected actions for endpoints that do not exist": sorted(set(ACTIONS) - served),
    } == {
        "endpoints without an expected action": [],
        "expected actions for endpoints that do not exist": [],
    }
    # Every endpoint has a matrix row to take its callers and referral state from.
    assert set(ACTIONS) <= {(method, path) for method, path, _ in MATRIX}


# --- one event per request, for every endpoint ------------------------------------------


@dataclass(frozen=True)
class Call:
    label: str
    caller: str | None  # a key of CALLERS, or None for a raw Authorization header
    headers: dict[str, str]
    expect_status: int
    outcome: str
    actor: Actor
    rid: str | None = None
    unit: str | None = None


def first_matrix_row(method: str, path: str) -> tuple[str, dict[str, Expect]]:
    for (m, p, target), expectations in MATRIX.items():
        if (m, p) == (method, path):
            return target, expectations
    raise AssertionError(f"no matrix row for {method} {path}")  # pragma: no cover


def ghost_unit() -> str:
    return f"enhet-saknas-{uuid.uuid4().hex[:8]}"


def endpoint_params() -> list[Any]:
    return [
        pytest.param(method, path, action, id=f"{method} {short(path)}")
        for (method, path), action in ACTIONS.items()
    ]


@pytest.mark.parametrize(("method", "path", "action"), endpoint_params())
def test_every_call_records_exactly_one_event(
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    callers: Callers,
    refused_tokens: RefusedTokens,
    dev_token: Callable[..., str],
    subtests: pytest.Subtests,
    method: str,
    path: str,
    action: str,
) -> None:
    """Allowed, denied (403/404 from the matrix), refused tokens (401), anonymous (401)
    and not found: each call adds one event with the right action, outcome, status,
    request id, target and actor."""
    state, expectations = first_matrix_row(method, path)
    allowed: str | None = next((c for c, e in expectations.items() if e.status < 400), None)
    allowed_headers: dict[str, str] = {}
    allowed_actor = verified(allowed) if allowed else None
    allowed_status = expectations[allowed].status if allowed else 200
    if allowed is None:
        role, unit = OUTSIDE_MATRIX[(method, path)]
        allowed_headers = bearer(dev_token(role, unit))
        allowed_actor = Actor(True, DEV_ISSUER, f"dev-{role}@{unit}", DEV_CLIENT_ID, (role,), unit)
        # The staff member the reassignment names must be known to the unit.
        known = client.get(f"{API}/referrals", headers=bearer(dev_token("caseworker", unit)))
        assert known.status_code == 200
    assert allowed_actor is not None
    kind = next((kind for arg, kind in OBJECTS.items() if arg in path), None)
    rid = etag = None
    if kind is not None:
        # The referral, routing rule or delivery the path names.
        rid, etag = prepare(client, database, callers, state)
        assert rid is not None
    has_unit = "<slug:unit_id>" in path

    calls: list[Call] = []
    for refusal in REFUSALS:
        refused = [c for c, e in expectations.items() if e is refusal]
        if refused:
            caller = refused[0]
            calls.append(
                Call(
                    f"denied {caller} ({refusal})",
                    caller,
                    {},
                    refusal.status,
                    "denied",
                    verified(caller),
                )
            )
    denied_by_matrix = bool(calls)
    calls += [
        Call(
            "tampered token",
            None,
            bearer(refused_tokens.tampered),
            401,
            "denied",
            claimed(refused_tokens.tampered_subject),
        ),
        Call(
            "expired token",
            None,
            bearer(refused_tokens.expired),
            401,
            "denied",
            claimed(refused_tokens.expired_subject),
        ),
        Call("no token", None, {}, 401, "denied", ANONYMOUS),
    ]
    if rid is not None:
        status, outcome = UNKNOWN_REFERRAL.get((method, path), (404, "denied"))
        calls.append(
            Call(
                f"unknown {kind}",
                allowed,
                allowed_headers,
                status,
                outcome,
                allowed_actor,
                rid=str(uuid.uuid4()),
            )
        )
    if has_unit:
        calls.append(
            Call(
                "unknown unit",
                allowed,
                allowed_headers,
                404,
                "denied",
                allowed_actor,
                unit=ghost_unit(),
            )
        )
    # Last, since it may change or delete the referral.
    calls.append(
        Call(
            f"allowed {allowed or 'outside the matrix'}",
            allowed,
            allowed_headers,
            allowed_status,
            "allowed",
            allowed_actor,
        )
    )

    request_ids: set[str] = set()
    for call in calls:
        with subtests.test(msg=call.label):
            used_rid = call.rid or rid
            used_unit = call.unit or ("kungsholmen" if has_unit else None)
            req = request_for(method, path, used_rid, etag)
            url = req["path"]
            if call.unit is not None:
                url = url.replace("/units/kungsholmen", f"/units/{call.unit}")
            headers = {**req["headers"], **call.headers}
            if call.caller is not None:
                headers = callers(call.caller, **headers)

            response, row = send(
                client, db_connection, method, url, json=req["json"], headers=headers
            )
            request_ids.add(row["request_id"])

            assert response.status_code == call.expect_status, response.get_data(as_text=True)
            if kind is not None:
                target: tuple[str | None, str | None] = (kind, str(used_rid))
            elif used_unit is not None:
                target = ("unit", used_unit)
            elif call.outcome == "allowed" and (method, path) == ("POST", REFERRALS):
                target = ("referral", response.get_json()["id"])
            elif call.outcome == "allowed" and (method, path) == ("POST", UNITS):
                target = ("unit", NEW_UNIT["id"])
            elif call.outcome == "allowed" and (method, path) == ("POST", ROUTING_RULES):
                target = ("routing-rule", response.get_json()["id"])
            else:
                target = (None, None)
            assert_event(
                row, response, action=action, outcome=call.outcome, actor=call.actor, target=target
            )
    assert len(request_ids) == len(calls), "request ids are unique"
    if not denied_by_matrix:
        # Only the unit directory is open to every role: its denied calls are the 401s.
        assert path in (UNITS, UNIT), f"{method} {path} has no refused caller in the matrix"


# --- invalid input and conflicts: one event, outcome "error" ----------------------------


def test_invalid_input_and_conflicts_record_one_error_event(
    client: FlaskClient,
    db_connection: Connection,
    callers: Callers,
    subtests: pytest.Subtests,
) -> None:
    cw, yw = verified("cw_own"), verified("yw_own")

    with subtests.test(msg="decline without a reason code: 422"):
        rid, etag = make_referral(client, callers, "requested")
        response, row = send(
            client,
            db_connection,
            "POST",
            f"{API}/referrals/{rid}/decline",
            json={},
            headers=callers("cw_own", **{"If-Match": etag}),
        )
        assert response.status_code == 422, response.get_data(as_text=True)
        assert_event(
            row, response, action="referral:decline", outcome="error", actor=cw,
            target=("referral", rid),
        )  # fmt: skip

    with subtests.test(msg="accept twice: 409"):
        rid, _ = make_referral(client, callers, "requested")
        url = f"{API}/referrals/{rid}/accept"
        first = client.post(url, json={}, headers=callers("cw_own"))
        assert first.status_code == 200, first.get_data(as_text=True)
        response, row = send(
            client, db_connection, "POST", url, json={},
            headers=callers("cw_own", **{"If-Match": first.headers["ETag"]}),
        )  # fmt: skip
        assert response.status_code == 409, response.get_data(as_text=True)
        assert_event(
            row, response, action="referral:accept", outcome="error", actor=cw,
            target=("referral", rid),
        )  # fmt: skip

    with subtests.test(msg="stale If-Match: 412"):
        rid, _ = make_referral(client, callers, "draft")
        response, row = send(
            client, db_connection, "PATCH", f"{API}/referrals/{rid}",
            json={"narrative": "Ny text"}, headers=callers("yw_own", **{"If-Match": '"v99"'}),
        )  # fmt: skip
        assert response.status_code == 412, response.get_data(as_text=True)
        assert_event(
            row, response, action="referral:update", outcome="error", actor=yw,
            target=("referral", rid),
        )  # fmt: skip

    with subtests.test(msg="edit without If-Match: 428"):
        rid, _ = make_referral(client, callers, "draft")
        response, row = send(
            client, db_connection, "PATCH", f"{API}/referrals/{rid}",
            json={"narrative": "Ny text"}, headers=callers("yw_own"),
        )  # fmt: skip
        assert response.status_code == 428, response.get_data(as_text=True)
        assert_event(
            row, response, action="referral:update", outcome="error", actor=yw,
            target=("referral", rid),
        )  # fmt: skip

    with subtests.test(msg="create with an invalid body: 422"):
        response, row = send(
            client, db_connection, "POST", f"{API}/referrals",
            json={"priority": "whenever"}, headers=callers("yw_own"),
        )  # fmt: skip
        assert response.status_code == 422, response.get_data(as_text=True)
        assert_event(
            row, response, action="referral:create", outcome="error", actor=yw,
            target=(None, None),
        )  # fmt: skip

    with subtests.test(msg="a body that is not JSON: 415"):
        rid, _ = make_referral(client, callers, "requested")
        before = audit_count(db_connection)
        response = client.post(
            f"{API}/referrals/{rid}/accept",
            data="assignee=Handlaggare",
            content_type="application/x-www-form-urlencoded",
            headers=callers("cw_own"),
        )
        assert response.status_code == 415, response.get_data(as_text=True)
        assert audit_count(db_connection) == before + 1
        (row,) = [
            r for r in audit_rows(db_connection).values()
            if r["request_id"] == response.headers["X-Request-ID"]
        ]  # fmt: skip
        assert_event(
            row, response, action="referral:accept", outcome="error", actor=cw,
            target=("referral", rid),
        )  # fmt: skip


# --- no personal data, tokens or search terms in the audit trail ------------------------


def token_needles(label: str, header: Mapping[str, str]) -> list[Needle]:
    token = header["Authorization"].removeprefix("Bearer ")
    needles = [(f"{label} token as {form}", data) for form, data in text_forms(token)[:4]]
    for name, segment in zip(("header", "payload", "signature"), token.split("."), strict=True):
        needles.append((f"{label} token {name} segment", segment.encode("ascii")))
    # The token's own identifier says nothing personal, but it is no business of the audit.
    jti = json.loads(_unb64(token.split(".")[1]))["jti"]
    needles.append((f"{label} token jti", jti.encode("ascii")))
    return needles


def test_audit_rows_hold_no_personal_data_tokens_or_search_terms(
    client: FlaskClient,
    db_connection: Connection,
    dev_token: Callable[..., str],
) -> None:
    actors = Actors(dev_token)
    before = audit_count(db_connection)
    scenario = populate(client, actors)  # every personal field a canary, notes, a search
    canaries = Canaries().merged(scenario.canaries)

    # The number searched for in every written form; each search is audited.
    searched = canaries.add_personal_number("searched personal number", "201311090235")
    number_forms = [written for _form, written in personal_number_forms(searched)]
    for written in number_forms:
        response = client.post(
            f"{API}/referrals/search", json={"personal_number": written}, headers=actors.worker
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    # Reading everything back is audited too.
    for rid in scenario.ids.values():
        for suffix in ("", "/events", "/notes"):
            response = client.get(f"{API}/referrals/{rid}{suffix}", headers=actors.worker)
            assert response.status_code == 200, response.get_data(as_text=True)
    # An auditor's own queries are audited, without their filters (search terms).
    auditor = {"Authorization": f"Bearer {dev_token('auditor')}"}
    sought = canaries.add("audit search actor filter", "sokt-aktor-Zorbalina-q5v")
    response = client.get(
        f"{API}/audit/events",
        query_string={"actor": sought, "action": "referral:read", "limit": 5},
        headers=auditor,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    response = client.get(f"{API}/referrals/{scenario.ids['Alfa']}/access-log", headers=auditor)
    assert response.status_code == 200, response.get_data(as_text=True)
    # Refused requests that carry personal data: an auditor's create, a bad number.
    refused_body = {
        "subject": {
            "name": canaries.add("refused subject name", "Gullvivan Refuserad Snorkelsdotter"),
            "personal_number": canaries.add("refused bad number", "19990231-0000"),
        },
        "narrative": canaries.add("refused narrative", "Avvisad-berättelse om Trollsjön x4k"),
    }
    for headers, status in ((auditor, 403), (actors.worker, 422)):
        response = client.post(f"{API}/referrals", json=refused_body, headers=headers)
        assert response.status_code == status, response.get_data(as_text=True)
    # A routing preview carries a whole referral body: none of it may reach the audit.
    preview = {
        "subject": {
            "name": canaries.add("preview subject name", "Kvittra Förhandsvisad Olsdotter"),
            "personal_number": canaries.add_personal_number(
                "preview personal number", "200908214380"
            ),
            "birth_date": canaries.add_birth_date("preview birth date", "2009-08-21"),
            "district": "ostermalm",
        },
        "categories": ["drugs"],
        "priority": "urgent",
        "place_met": canaries.add("preview place met", "Förhandsvisningsplatsen Humlegården"),
        "narrative": canaries.add("preview narrative", "Förhandsvisad berättelse om Ekhagen z8m"),
    }
    for headers in (actors.worker, {"Authorization": f"Bearer {dev_token('admin')}"}):
        response = client.post(f"{API}/routing/preview", json=preview, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    # A search by a caller whose token is refused.
    response = client.post(
        f"{API}/referrals/search",
        json={"personal_number": number_forms[1]},
        headers={"Authorization": "Bearer " + tamper(actors.worker["Authorization"][7:], x=1)},
    )
    assert response.status_code == 401

    needles = list(canaries.needles)
    for label, header in (
        ("worker", actors.worker), ("norrmalm", actors.norrmalm),
        ("sodermalm", actors.sodermalm), ("kungsholmen", actors.kungsholmen),
        ("auditor", auditor),
    ):  # fmt: skip
        needles += token_needles(label, header)

    rows = db_connection.execute(text("SELECT * FROM audit_events")).mappings().all()
    assert len(rows) - before >= 40, "the scan would prove nothing without the events"
    hits = [
        f"audit_events.{column}: {label}"
        for row in rows
        for column, value in row.items()
        for label in find(cell_bytes(value), needles)
    ]
    assert hits == []


# --- fail closed ------------------------------------------------------------------------

CANARY_NAME = "Zackarina Felstängd Blomkvistsdotter"
CANARY_NARRATIVE = "Felinjektion-berättelse: sågs vid Rävstaviken med en tom ryggsäck q7p."
CANARY_NUMBER = "201206142380"  # Luhn-valid, made up


def canary_body() -> dict[str, Any]:
    return {
        "subject": {
            "name": CANARY_NAME,
            "personal_number": CANARY_NUMBER,
            "birth_date": "2012-06-14",
            "district": "norrmalm",
        },
        "categories": ["family_conflict"],
        "priority": "normal",
        "legal_basis": "duty_to_report",
        "place_met": "Rävstaviken",
        "narrative": CANARY_NARRATIVE,
    }


def canary_forms() -> list[str]:
    return [CANARY_NAME, CANARY_NARRATIVE] + [w for _f, w in personal_number_forms(CANARY_NUMBER)]


def requested_canary_referral(client: FlaskClient, callers: Callers) -> tuple[str, str]:
    created = client.post(f"{API}/referrals", json=canary_body(), headers=callers("yw_own"))
    assert created.status_code == 201, created.get_data(as_text=True)
    rid = created.json["id"]
    submitted = client.post(f"{API}/referrals/{rid}/submit", json={}, headers=callers("yw_own"))
    assert submitted.status_code == 200, submitted.get_data(as_text=True)
    return rid, submitted.headers["ETag"]


@dataclass(frozen=True)
class CaseState:
    status: str
    version: int
    receiving_unit: str | None
    assignee: str | None
    timeline: int
    notes: int


def case_state(database: Database, rid: str) -> CaseState:
    key = uuid.UUID(rid)
    with database.sessions() as session:
        referral = session.get(Referral, key)
        assert referral is not None
        timeline = session.scalar(
            select(func.count()).select_from(TimelineEvent).where(TimelineEvent.referral_id == key)
        )
        notes = session.scalar(
            select(func.count()).select_from(Note).where(Note.referral_id == key)
        )
        return CaseState(
            referral.status,
            referral.version,
            referral.receiving_unit_id,
            referral.assignee,
            timeline or 0,
            notes or 0,
        )


def assert_audit_unavailable(response: TestResponse) -> None:
    text_ = response.get_data(as_text=True)
    assert response.status_code == 503, text_
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json()["type"] == AUDIT_UNAVAILABLE
    assert response.headers.get("Retry-After")
    assert response.headers.get("X-Request-ID")
    assert "ETag" not in response.headers
    assert [value for value in canary_forms() if value in text_] == []


def failing_record(*_args: Any, **_kwargs: Any) -> None:
    raise OperationalError("INSERT", {}, Exception("disk full"))


def read_requests(rid: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every read that could carry the canary referral's data."""
    return [
        ("GET", f"{API}/referrals/{rid}", None),
        ("GET", f"{API}/referrals/{rid}/events", None),
        ("GET", f"{API}/referrals/{rid}/notes", None),
        ("GET", f"{API}/referrals", None),
        ("POST", f"{API}/referrals/search", {"personal_number": CANARY_NUMBER}),
    ]


def test_a_change_whose_event_cannot_be_written_is_not_made(
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    callers: Callers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid, etag = requested_canary_referral(client, callers)
    note = client.post(
        f"{API}/referrals/{rid}/notes",
        json={"text": "Anteckning före felet", "visibility": "shared"},
        headers=callers("cw_own"),
    )
    assert note.status_code == 201
    before = case_state(database, rid)
    assert before.status == "requested"
    monkeypatch.setattr("referrals.services.uow.record", failing_record)

    accept, row = send(
        client, db_connection, "POST", f"{API}/referrals/{rid}/accept",
        json={"assignee": "dev-caseworker@norrmalm"},
        headers=callers("cw_own", **{"If-Match": etag}),
    )  # fmt: skip
    assert_audit_unavailable(accept)
    assert case_state(database, rid) == before
    # The failed request is still recorded once, by the refusal path: as an error.
    assert_event(
        row, accept, action="referral:accept", outcome="error", actor=verified("cw_own"),
        target=("referral", rid),
    )  # fmt: skip

    noted, _ = send(
        client, db_connection, "POST", f"{API}/referrals/{rid}/notes",
        json={"text": "Anteckning under felet", "visibility": "shared"},
        headers=callers("cw_own"),
    )  # fmt: skip
    assert_audit_unavailable(noted)
    assert case_state(database, rid) == before

    created, _ = send(
        client, db_connection, "POST", f"{API}/referrals", json=canary_body(),
        headers=callers("yw_own"),
    )  # fmt: skip
    assert_audit_unavailable(created)
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


def test_a_read_whose_event_cannot_be_written_returns_no_case_data(
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    callers: Callers,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    rid, _ = requested_canary_referral(client, callers)
    before = case_state(database, rid)
    monkeypatch.setattr("referrals.services.uow.record", failing_record)

    for method, url, body in read_requests(rid):
        with subtests.test(msg=f"{method} {url}"):
            response, row = send(
                client, db_connection, method, url, json=body, headers=callers("cw_own")
            )
            assert_audit_unavailable(response)
            assert (row["outcome"], row["http_status"]) == ("error", 503)
    assert case_state(database, rid) == before


def allowed_count(connection: Connection) -> int:
    query = select(func.count()).select_from(AUDIT).where(AUDIT.c.outcome == "allowed")
    return connection.execute(query).scalar_one()


def test_an_answer_without_its_audit_event_fails_closed(
    client: FlaskClient,
    db_connection: Connection,
    callers: Callers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A use case that answers without committing (so without writing its event) is a
    bug the decorator catches: 503, and not the answer.  Simulated by running the real
    read with a commit that does nothing, so the view has the case data in hand."""
    from referrals.services import referrals as service
    from referrals.services import units as unit_service

    rid, _ = requested_canary_referral(client, callers)
    real_get = service.get
    handed_over: list[object] = []

    def get_without_commit(uow: Any, ctx: Any, referral_id: uuid.UUID) -> Any:
        monkeypatch.setattr(uow, "commit", lambda: None)
        view = real_get(uow, ctx, referral_id)
        handed_over.append(view)
        return view

    def units_without_commit(uow: Any, ctx: Any) -> list[dict[str, Any]]:
        return [unit_service.represent(u, ctx) for u in uow.units.all()]

    monkeypatch.setattr(service, "get", get_without_commit)
    monkeypatch.setattr(unit_service, "list_all", units_without_commit)
    allowed = allowed_count(db_connection)

    read = client.get(f"{API}/referrals/{rid}", headers=callers("cw_own"))
    assert handed_over, "the view never ran: the test would prove nothing"
    assert_audit_unavailable(read)

    listed = client.get(f"{API}/units", headers=callers("cw_own"))
    assert_audit_unavailable(listed)
    assert "norrmalm" not in listed.get_data(as_text=True)
    # Nothing in the trail claims these answers were given.
    assert allowed_count(db_connection) == allowed


def test_when_the_refusal_cannot_be_recorded_either_the_answer_is_503(
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    callers: Callers,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    rid, etag = requested_canary_referral(client, callers)
    before = case_state(database, rid)
    monkeypatch.setattr("referrals.services.uow.record", failing_record)
    monkeypatch.setattr("referrals.runtime.record", failing_record)
    # A refusal of an unverified (claimed) actor is counted through its own function.
    monkeypatch.setattr("referrals.runtime.record_unverified", failing_record)
    count = audit_count(db_connection)

    attempts = [
        ("unknown referral (would be 404)", "GET", f"{API}/referrals/{uuid.uuid4()}",
         None, callers("cw_own")),
        ("other unit (would be 404)", "GET", f"{API}/referrals/{rid}", None, callers("cw_other")),
        ("auditor (would be 403)", "GET", f"{API}/referrals/{rid}", None, callers("auditor")),
        ("anonymous (would be 401)", "GET", f"{API}/referrals/{rid}", None, {}),
        ("conflict (would be 409)", "POST", f"{API}/referrals/{rid}/start", {},
         callers("cw_own")),
        ("allowed read", "GET", f"{API}/referrals/{rid}", None, callers("cw_own")),
        ("allowed change", "POST", f"{API}/referrals/{rid}/accept", {},
         callers("cw_own", **{"If-Match": etag})),
    ]  # fmt: skip
    for label, method, url, body, headers in attempts:
        with subtests.test(msg=label):
            response = client.open(url, method=method, json=body, headers=headers)
            assert_audit_unavailable(response)
    assert audit_count(db_connection) == count
    assert case_state(database, rid) == before


@pytest.mark.postgres_only
def test_an_unwritable_audit_table_fails_requests_closed(
    client: FlaskClient,
    database: Database,
    db_connection: Connection,
    callers: Callers,
    subtests: pytest.Subtests,
) -> None:
    """No monkeypatching: the table itself refuses every new row (inside this test's
    rolled-back transaction), as a full disk or a revoked grant would."""
    rid, etag = requested_canary_referral(client, callers)
    before = case_state(database, rid)
    count = audit_count(db_connection)
    db_connection.exec_driver_sql(
        "ALTER TABLE audit_events ADD CONSTRAINT audit_test_block CHECK (false) NOT VALID"
    )

    attempts = [
        *[(f"{m} {u}", m, u, b, callers("cw_own")) for m, u, b in read_requests(rid)],
        ("unknown referral (would be 404)", "GET", f"{API}/referrals/{uuid.uuid4()}",
         None, callers("cw_own")),
        ("accept", "POST", f"{API}/referrals/{rid}/accept", {"assignee": "dev-caseworker@norrmalm"},
         callers("cw_own", **{"If-Match": etag})),
        ("note", "POST", f"{API}/referrals/{rid}/notes",
         {"text": "Anteckning mot spärrad tabell", "visibility": "shared"}, callers("cw_own")),
    ]  # fmt: skip
    for label, method, url, body, headers in attempts:
        with subtests.test(msg=label):
            response = client.open(url, method=method, json=body, headers=headers)
            assert_audit_unavailable(response)
    assert audit_count(db_connection) == count
    assert case_state(database, rid) == before


def test_the_witness_sees_every_audit_insert_however_it_is_sent(
    client: FlaskClient, callers: Callers, witness: Witness
) -> None:
    """The session-wide leak check (tests/conftest.py) reads the INSERTs that reach the
    driver: one request's event, sent as the recorder's precompiled statement, is seen
    with its request id, so the check cannot pass by seeing nothing."""
    rid, _ = requested_canary_referral(client, callers)
    before = len(witness.audit_rows)
    read = client.get(f"{API}/referrals/{rid}", headers=callers("cw_own"))
    assert read.status_code == 200
    seen = witness.audit_rows[before:]
    assert len(seen) == 1
    assert read.headers["X-Request-ID"] in seen[0]
