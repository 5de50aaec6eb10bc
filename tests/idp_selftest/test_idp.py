"""Self-test of the loopback OpenID Provider fixture, not of the application."""

from __future__ import annotations

import time

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.idp import CODE_CLIENT, RestartableIdP, TestIdP, generate_keys


def published_keys(idp: TestIdP) -> KeySet:
    response = requests.get(idp.jwks_uri, timeout=5)
    response.raise_for_status()
    return KeySet.import_key_set(response.json())


def test_access_token_is_an_rfc9068_jwt_with_client_claims(oidc_provider: TestIdP) -> None:
    token = jwt.decode(
        oidc_provider.token("ungdomsjouren-app"),
        published_keys(oidc_provider),
        algorithms=["RS256"],
    )

    assert token.header == {"typ": "at+jwt", "alg": "RS256", "kid": "rsa-1"}
    claims = token.claims
    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == "referrals-api"
    assert claims["sub"] == claims["client_id"] == "ungdomsjouren-app"
    assert claims["roles"] == ["youth_worker"]
    assert claims["unit"] == "ungdomsjouren"
    assert claims["scope"] == "referrals:read referrals:write"
    assert claims["jti"]
    assert claims["iat"] <= time.time() < claims["exp"] == claims["iat"] + 300


def test_es256_resource_signs_with_the_ec_key(oidc_provider: TestIdP) -> None:
    raw = oidc_provider.token("norrmalm-system", resource="urn:referrals-api:es256")
    token = jwt.decode(raw, published_keys(oidc_provider), algorithms=["ES256"])

    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == "ec-1"
    assert token.claims["aud"] == "referrals-api"


def test_keycloak_style_claims_are_passed_through(oidc_provider: TestIdP) -> None:
    token = jwt.decode(
        oidc_provider.token("keycloak-style"), published_keys(oidc_provider), algorithms=["RS256"]
    )

    assert token.claims["realm_access"] == {"roles": ["caseworker"]}
    assert "roles" not in token.claims


def test_scope_outside_the_client_allow_list_is_refused(oidc_provider: TestIdP) -> None:
    assert oidc_provider.token("readonly-worker") != ""
    with pytest.raises(RuntimeError, match="invalid_scope"):
        oidc_provider.token("readonly-worker", scope="referrals:read referrals:write")


def test_private_keys_forge_tokens_the_published_keys_accept(oidc_provider: TestIdP) -> None:
    forged = jwt.encode(
        {"typ": "at+jwt", "alg": "RS256", "kid": "rsa-1"},
        {"iss": oidc_provider.issuer, "aud": "someone-else"},
        oidc_provider.keys,
    )

    token = jwt.decode(forged, published_keys(oidc_provider), algorithms=["RS256"])
    assert token.claims["aud"] == "someone-else"


def test_id_token_from_code_flow(oidc_provider: TestIdP) -> None:
    token = jwt.decode(
        oidc_provider.id_token(login="alice"), published_keys(oidc_provider), algorithms=["RS256"]
    )

    assert token.header.get("typ", "JWT") == "JWT"
    assert token.claims["aud"] == CODE_CLIENT["client_id"]
    assert token.claims["iss"] == oidc_provider.issuer
    assert token.claims["sub"] == "alice"


def test_restart_on_the_same_port_rotates_keys(restartable_idp: RestartableIdP) -> None:
    first = restartable_idp.start()
    issuer, port = first.issuer, first.port
    assert first.port != 0

    second = restartable_idp.start(generate_keys(rsa_kid="rsa-2", ec_kid="ec-2"))

    assert (second.issuer, second.port) == (issuer, port)
    assert first.process.returncode == 0
    assert [key["kid"] for key in published_keys(second).as_dict()["keys"]] == ["rsa-2", "ec-2"]
    token = jwt.decode(second.token("admin-app"), published_keys(second), algorithms=["RS256"])
    assert token.header["kid"] == "rsa-2"
