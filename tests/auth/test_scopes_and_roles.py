"""Valid tokens that may not do what they ask: scope (403, endpoint group) and role/unit
(403 from the policy, before any referral is looked up, so no existence leak)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals.db.engine import Database
from referrals.db.models import Referral
from tests.auth.forgery import bearer, forge
from tests.auth.problems import assert_problem
from tests.support.idp import TestIdP

INBOX = "/api/v1/referrals"
INSUFFICIENT_SCOPE = {
    "type": "urn:referrals:problem:insufficient-scope",
    "title": "Forbidden",
    "status": 403,
    "detail": "The access token lacks the scope this endpoint needs.",
}
NO_INBOX = {
    "type": "urn:referrals:problem:forbidden",
    "title": "Forbidden",
    "status": 403,
    "detail": "this role has no referral inbox or outbox",
}
NO_CASE_CONTENT = NO_INBOX | {"detail": "this role has no access to case content"}
NOT_A_REFERRER = NO_INBOX | {"detail": "only youth workers of a referring unit open referrals"}

NEW_REFERRAL = {
    "subject": {"name": "Testa Provsson", "district": "norrmalm"},
    "categories": ["alcohol"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
    "submit": True,
}


def referral_count(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(Referral)) or 0


def assert_insufficient_scope(response: Any) -> None:
    assert_problem(response, 403, INSUFFICIENT_SCOPE)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def create_referral(client: FlaskClient, oidc_provider: TestIdP) -> str:
    created = client.post(
        INBOX, json=NEW_REFERRAL, headers=bearer(oidc_provider.token("ungdomsjouren-app"))
    )
    assert created.status_code == 201, created.json
    return str(created.json["id"])


def test_read_only_worker_cannot_create(
    idp_client: FlaskClient, oidc_provider: TestIdP, database: Database
) -> None:
    readonly = bearer(oidc_provider.token("readonly-worker"))
    assert_insufficient_scope(idp_client.post(INBOX, json=NEW_REFERRAL, headers=readonly))
    assert referral_count(database) == 0
    # The same token reads its unit's outbox: the refusal above is the scope, not the role.
    response = idp_client.get(INBOX, headers=readonly)
    assert response.status_code == 200, response.json


def test_read_only_worker_cannot_act_on_a_referral(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    rid = create_referral(idp_client, oidc_provider)
    readonly = bearer(oidc_provider.token("readonly-worker"))
    assert idp_client.get(f"{INBOX}/{rid}", headers=readonly).status_code == 200
    assert_insufficient_scope(
        idp_client.post(
            f"{INBOX}/{rid}/cancel", json={"reason_code": "duplicate"}, headers=readonly
        )
    )
    assert_insufficient_scope(
        idp_client.post(
            f"{INBOX}/{rid}/notes", json={"text": "x", "visibility": "shared"}, headers=readonly
        )
    )
    after = idp_client.get(f"{INBOX}/{rid}", headers=readonly)
    assert after.json["status"] == "requested"


def test_scope_is_checked_before_the_body(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    """A caller without the scope learns nothing about what the endpoint expects."""
    readonly = bearer(oidc_provider.token("readonly-worker"))
    assert_insufficient_scope(idp_client.post(INBOX, json={"status": "x"}, headers=readonly))


@pytest.mark.parametrize(
    ("client_id", "scope"),
    [
        ("norrmalm-system", ""),
        ("auditor-app", None),
        ("admin-app", None),
    ],
    ids=["no-scope-claim", "auditor-scope", "admin-scope"],
)
def test_token_without_referral_scopes(
    idp_client: FlaskClient, oidc_provider: TestIdP, client_id: str, scope: str | None
) -> None:
    headers = bearer(oidc_provider.token(client_id, scope=scope))
    assert_insufficient_scope(idp_client.get(INBOX, headers=headers))
    assert_insufficient_scope(idp_client.post(INBOX, json=NEW_REFERRAL, headers=headers))


@pytest.mark.parametrize(
    "scope",
    [
        ["referrals:read", "referrals:write"],
        "referrals:read",
        "referrals:readx",
        "REFERRALS:READ",
        "referrals",
    ],
    ids=["list", "read-only-string", "prefix-lookalike", "uppercase", "group-name"],
)
def test_forged_scope_shapes(idp_client: FlaskClient, oidc_provider: TestIdP, scope: Any) -> None:
    """Only an exact space-separated ``scope`` string (or Azure's ``scp``) grants a scope."""
    response = idp_client.get(INBOX, headers=bearer(forge(oidc_provider, scope=scope)))
    if scope == "referrals:read":
        assert response.status_code == 200, response.json
    else:
        assert_insufficient_scope(response)


def test_azure_scp_list_grants_scopes(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    token = forge(oidc_provider, omit=("scope",), scp=["referrals:read", "referrals:write"])
    response = idp_client.get(INBOX, headers=bearer(token))
    assert response.status_code == 200, response.json


# --- role and unit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "unit"),
    [
        (["janitor"], "norrmalm"),
        (["Caseworker"], "norrmalm"),
        ([], "norrmalm"),
        (["auditor"], "norrmalm"),
        (["admin"], "norrmalm"),
        (["caseworker"], None),
        (["caseworker"], ""),
        (["caseworker"], ["norrmalm"]),
        (["caseworker"], {"id": "norrmalm"}),
        (None, "norrmalm"),
        ([["caseworker"]], "norrmalm"),
        ([{"role": "caseworker"}], "norrmalm"),
    ],
    ids=[
        "unknown-role",
        "role-case-differs",
        "no-roles",
        "auditor",
        "admin",
        "no-unit",
        "empty-unit",
        "unit-list",
        "unit-object",
        "roles-null",
        "nested-list",
        "role-object",
    ],
)
def test_no_known_case_role_is_refused_with_403(
    idp_client: FlaskClient,
    oidc_provider: TestIdP,
    roles: Any,
    unit: Any,
) -> None:
    rid = create_referral(idp_client, oidc_provider)
    headers = bearer(forge(oidc_provider, roles=roles, unit=unit))
    assert_problem(idp_client.get(INBOX, headers=headers), 403, NO_INBOX)
    # The same answer for a referral that exists and one that does not: no existence oracle.
    assert_problem(idp_client.get(f"{INBOX}/{rid}", headers=headers), 403, NO_CASE_CONTENT)
    assert_problem(idp_client.get(f"{INBOX}/{uuid.uuid4()}", headers=headers), 403, NO_CASE_CONTENT)
    assert_problem(
        idp_client.post(f"{INBOX}/{rid}/accept", json={}, headers=headers), 403, NO_CASE_CONTENT
    )


@pytest.mark.parametrize(
    "roles",
    [True, 5, 1.5, {"caseworker": False}, {"caseworker": True}],
    ids=["boolean", "number", "float", "object-false", "object-true"],
)
def test_roles_claim_of_the_wrong_type_grants_nothing(
    idp_client: FlaskClient, oidc_provider: TestIdP, roles: Any
) -> None:
    """A roles claim that is not a list or a space-separated string is no role at all:
    403 like any unknown role, never a 500 and never a role read from object keys."""
    response = idp_client.get(INBOX, headers=bearer(forge(oidc_provider, roles=roles)))
    assert_problem(response, 403, NO_INBOX)


def test_space_separated_roles_string_is_a_list(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    response = idp_client.get(
        INBOX, headers=bearer(forge(oidc_provider, roles="janitor caseworker"))
    )
    assert response.status_code == 200, response.json


def test_caseworker_cannot_open_a_referral(
    idp_client: FlaskClient, oidc_provider: TestIdP, database: Database
) -> None:
    headers = bearer(oidc_provider.token("norrmalm-system"))
    assert_problem(idp_client.post(INBOX, json=NEW_REFERRAL, headers=headers), 403, NOT_A_REFERRER)
    assert referral_count(database) == 0


def test_youth_worker_of_a_receiving_unit_cannot_open_a_referral(
    idp_client: FlaskClient, oidc_provider: TestIdP, database: Database
) -> None:
    token = forge(oidc_provider, client="norrmalm-system", roles=["youth_worker"], unit="norrmalm")
    response = idp_client.post(INBOX, json=NEW_REFERRAL, headers=bearer(token))
    assert_problem(
        response, 403, NO_INBOX | {"detail": "the caller's unit is not a registered referring unit"}
    )
    assert referral_count(database) == 0


def test_caseworker_of_an_unknown_unit_sees_an_empty_inbox_and_404(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    rid = create_referral(idp_client, oidc_provider)
    headers = bearer(forge(oidc_provider, unit="atlantis"))
    inbox = idp_client.get(INBOX, headers=headers)
    assert inbox.status_code == 200
    assert inbox.json["items"] == []
    response = idp_client.get(f"{INBOX}/{rid}", headers=headers)
    assert response.status_code == 404


@pytest.mark.parametrize("roles", [["janitor"], []], ids=["unknown-role", "no-role"])
def test_the_unit_directory_needs_a_known_role(
    idp_client: FlaskClient, oidc_provider: TestIdP, roles: list[str]
) -> None:
    """A valid token with the scopes but no role the service knows reads no unit list."""
    headers = bearer(forge(oidc_provider, roles=roles))
    for path in ("/api/v1/units", "/api/v1/units/norrmalm"):
        response = idp_client.get(path, headers=headers)
        assert response.status_code == 403, response.get_data(as_text=True)[:500]
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "norrmalm" not in response.get_data(as_text=True)
    # The same token with a known role does read it: the refusal above is the role.
    known = bearer(forge(oidc_provider))
    assert idp_client.get("/api/v1/units", headers=known).status_code == 200
