"""A scope or a unit claim never stands in for the role (rules the mutation check in
tests/mutation/run_mutations.py found untested): tokens from the real test provider."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.idp import TestIdP

REFERRAL = {
    "subject": {"name": "Roll Exempelsson", "district": "norrmalm"},
    "categories": ["violence"],
    "priority": "acute",
    "legal_basis": "duty_to_report",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_auditor_with_a_unit_still_sees_no_case_content(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    auditor = bearer(oidc_provider.token("unit-auditor"))
    assert idp_client.get("/api/v1/referrals", headers=auditor).status_code == 403


def test_a_caseworker_of_a_referring_unit_opens_no_referral(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    caseworker = bearer(oidc_provider.token("ungdomsjouren-caseworker"))
    response = idp_client.post("/api/v1/referrals", json=REFERRAL, headers=caseworker)
    assert response.status_code == 403
    assert "Roll" not in response.get_data(as_text=True)


def test_the_admin_scope_without_the_admin_role_changes_no_unit(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    caseworker = bearer(oidc_provider.token("admin-scoped-caseworker"))
    created = idp_client.post(
        "/api/v1/units",
        json={"id": "falsk", "name": "Falsk enhet", "kind": "receiver", "districts": []},
        headers=caseworker,
    )
    assert created.status_code == 403
    changed = idp_client.put(
        "/api/v1/units/norrmalm",
        json={"name": "Kapad", "kind": "receiver", "districts": ["norrmalm"]},
        headers=caseworker,
    )
    assert changed.status_code in (403, 428)
    assert idp_client.get("/api/v1/units/norrmalm", headers=caseworker).json["name"] != "Kapad"


def test_the_audit_scope_without_the_auditor_role_reads_no_trail(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    caseworker = bearer(oidc_provider.token("audit-scoped-caseworker"))
    assert idp_client.get("/api/v1/audit/events", headers=caseworker).status_code == 403
