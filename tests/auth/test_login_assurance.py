"""Login assurance (item 11): roles may demand an ``acr`` (how the person signed in).

Real tokens from the loopback OpenID Provider, with and without ``acr``; a token whose
``acr`` the caller's role does not accept gets RFC 9470's step-up challenge, and the
refusal is audited under the verified actor."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from referrals.config import ConfigError, Settings
from tests.auth.conftest import MakeApp
from tests.support.idp import LOA2, LOA3, TestIdP

REFERRALS = "/api/v1/referrals"
STRICT = {"caseworker": (LOA3,)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_off_by_default_a_token_without_acr_is_accepted(
    make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    client = make_idp_app(oidc_provider.issuer).test_client()
    response = client.get(REFERRALS, headers=bearer(oidc_provider.token("norrmalm-system")))
    assert response.status_code == 200


@pytest.mark.parametrize("client_id", ["norrmalm-system", "norrmalm-loa2"])
def test_a_caseworker_without_the_required_acr_is_challenged_to_step_up(
    make_idp_app: MakeApp, oidc_provider: TestIdP, db_connection: Connection, client_id: str
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_required_acr=STRICT).test_client()
    response = client.get(REFERRALS, headers=bearer(oidc_provider.token(client_id)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        f'acr_values="{LOA3}"'
    )
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:referrals:problem:insufficient-user-authentication"
    event = db_connection.execute(
        text(
            "SELECT actor_verified, actor_issuer, client_id, outcome, http_status "
            "FROM audit_events WHERE action = 'referral:list' ORDER BY recorded_at DESC"
        )
    ).first()
    assert event is not None
    assert tuple(event) == (True, oidc_provider.issuer, client_id, "denied", 401)


def test_the_accepted_acr_passes(make_idp_app: MakeApp, oidc_provider: TestIdP) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_required_acr=STRICT).test_client()
    response = client.get(REFERRALS, headers=bearer(oidc_provider.token("norrmalm-eid")))
    assert response.status_code == 200


def test_roles_without_a_demand_are_not_affected(
    make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_required_acr=STRICT).test_client()
    response = client.get(REFERRALS, headers=bearer(oidc_provider.token("ungdomsjouren-app")))
    assert response.status_code == 200


def test_the_setting_is_read_per_role() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_OIDC_REQUIRED_ACR": f"caseworker={LOA3} {LOA2}, youth_worker={LOA3}",
        }
    )
    assert settings.oidc_required_acr == {"caseworker": (LOA3, LOA2), "youth_worker": (LOA3,)}


@pytest.mark.parametrize("raw", ["caseworker", "boss=urn:x", "caseworker=", "x"])
def test_an_unusable_setting_is_refused_with_its_name(raw: str) -> None:
    with pytest.raises(ConfigError, match="REFERRALS_OIDC_REQUIRED_ACR"):
        Settings.from_env({"REFERRALS_ENV": "development", "REFERRALS_OIDC_REQUIRED_ACR": raw})
