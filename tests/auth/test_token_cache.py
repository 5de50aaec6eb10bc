"""The cache of verified tokens (``AccessTokenValidator``): what it may never let through.

A token whose signature checked out is kept under the SHA-256 of the whole token string
until its expiry, so a caller's next request skips the signature check.  The attacks:
an expired token that was cached, a token with the cached claims but another signature,
another payload under a cached signature, and a cached token after its issuer withdrew the
key.  Tokens come from the real loopback provider, or are signed with its key (``forge``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import RSAKey

from referrals.auth import tokens
from referrals.auth.tokens import AccessTokenValidator
from tests.auth.conftest import MakeApp
from tests.auth.forgery import (
    access_claims,
    at_header,
    b64url,
    b64url_decode,
    bearer,
    forge,
    header_of,
    part,
    provider_key,
    sign,
)
from tests.auth.problems import assert_invalid_token
from tests.support.idp import TestIdP

INBOX = "/api/v1/referrals"


def inbox_with(client: FlaskClient, token: str) -> Any:
    return client.get(INBOX, headers=bearer(token))


def validator_of(app: Flask) -> AccessTokenValidator:
    protector = app.extensions["referrals"].authenticator._protector
    validator = protector.get_token_validator("bearer")
    assert isinstance(validator, AccessTokenValidator)
    return validator


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature verification the validator runs (the real one, counted)."""
    seen: list[str] = []
    real = joserfc_jwt.decode

    def counted(value: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(value if isinstance(value, str) else value.decode())
        return real(value, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", counted)
    return seen


def test_a_repeated_token_is_verified_once_and_keyed_by_its_whole_digest(
    idp_app: Flask, oidc_provider: TestIdP, verifications: list[str]
) -> None:
    client = idp_app.test_client()
    token = oidc_provider.token("norrmalm-system")
    for _ in range(3):
        assert inbox_with(client, token).status_code == 200
    assert verifications == [token]
    cached = validator_of(idp_app)._verified
    assert list(cached.keys()) == [hashlib.sha256(token.encode("ascii")).digest()]


def test_a_cached_token_is_refused_once_it_expires(
    make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_leeway=0).test_client()
    token = forge(oidc_provider, lifetime=2)
    assert inbox_with(client, token).status_code == 200
    assert inbox_with(client, token).status_code == 200  # now from the cache
    time.sleep(3.1)
    assert_invalid_token(inbox_with(client, token))


@pytest.mark.parametrize("bit", [0, 7, 100, -1])
def test_the_cached_claims_under_a_tampered_signature_are_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, verifications: list[str], bit: int
) -> None:
    token = oidc_provider.token("norrmalm-system")
    assert inbox_with(idp_client, token).status_code == 200
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[bit // 8 if bit >= 0 else -1] ^= 1 << (bit % 8 if bit >= 0 else 0)
    tampered = f"{head}.{payload}.{b64url(bytes(raw))}"
    assert tampered != token
    assert_invalid_token(inbox_with(idp_client, tampered))
    # The forgery went through the full verification, and the real token still works.
    assert verifications[-1] == tampered
    assert inbox_with(idp_client, token).status_code == 200


def test_the_cached_claims_signed_by_an_attacker_are_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    claims = access_claims(oidc_provider.issuer)
    real = sign(at_header(), claims, provider_key(oidc_provider))
    assert inbox_with(idp_client, real).status_code == 200
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_invalid_token(inbox_with(idp_client, sign(at_header(), claims, attacker)))


def test_another_payload_under_a_cached_signature_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    ours = oidc_provider.token("norrmalm-system")
    assert inbox_with(idp_client, ours).status_code == 200
    head, _payload, signature = ours.split(".")
    # The same header and signature, claims widened to another unit.
    other = access_claims(oidc_provider.issuer, unit="sodermalm")
    spliced = f"{head}.{part(other)}.{signature}"
    assert_invalid_token(inbox_with(idp_client, spliced))
    # And a cached token with anything appended is another token, not a hit.
    assert_invalid_token(inbox_with(idp_client, ours + "A"))


def test_a_cached_token_ends_with_its_key(
    idp_app: Flask,
    oidc_provider: TestIdP,
    verifications: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = idp_app.test_client()
    token = oidc_provider.token("norrmalm-system")
    assert inbox_with(client, token).status_code == 200
    kid = header_of(token)["kid"]
    source = validator_of(idp_app)._issuers[oidc_provider.issuer].keys
    assert source.find(kid) is not None
    # The issuer no longer publishes the key that signed it (what a refetch after a
    # withdrawal finds): the cached entry no longer counts, and verification fails.
    real_find = source.find
    monkeypatch.setattr(source, "find", lambda k: None if k == kid else real_find(k))
    assert_invalid_token(inbox_with(client, token))
    assert verifications == [token]  # refused before any signature check: no such key


def test_a_cached_token_is_checked_again_when_its_kid_names_another_key(
    idp_app: Flask,
    oidc_provider: TestIdP,
    verifications: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = idp_app.test_client()
    token = oidc_provider.token("norrmalm-system")
    assert inbox_with(client, token).status_code == 200
    kid = header_of(token)["kid"]
    source = validator_of(idp_app)._issuers[oidc_provider.issuer].keys
    # The issuer now publishes another key under the same kid: the cached verification
    # was against the old key, so the token is verified again, against the new one.
    other = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
    replaced = RSAKey.import_key(other.as_dict(private=False))
    real_find = source.find
    monkeypatch.setattr(source, "find", lambda k: replaced if k == kid else real_find(k))
    assert_invalid_token(inbox_with(client, token))
    assert verifications == [token, token]
