"""The audit:read scope without the auditor (or privacy-officer) role places no legal hold
and reads no retention report: the role decides, not the scope.  Tokens from the real test
provider."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient

from tests.support.idp import TestIdP


def test_the_audit_scope_without_the_role_holds_nothing_and_reads_no_report(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    caseworker = {"Authorization": f"Bearer {oidc_provider.token('audit-scoped-caseworker')}"}
    path = f"/api/v1/referrals/{uuid.uuid4()}/legal-hold"

    placed = idp_client.put(path, json={"reason_code": "complaint"}, headers=caseworker)
    released = idp_client.delete(path, headers=caseworker)
    report = idp_client.get("/api/v1/privacy/retention", headers=caseworker)

    for response in (placed, released, report):
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.get_json()["type"] == "urn:referrals:problem:forbidden"
