"""Forged, tampered, misplaced and malformed bearer tokens: each one is a plain 401.

Tokens come from the real provider, or are signed with the provider's own private key to
reach one claim edge case at a time (``forge``), or with an attacker's key.  The 401 body
is compared word for word, so no test passes by leaking which check failed.  Each group
has a positive control showing the same construction is accepted when nothing is wrong.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from tests.auth.attacker import public_jwk, recording_server, self_signed_der
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
from tests.auth.problems import assert_invalid_token, assert_unauthenticated
from tests.support.idp import TestIdP, default_clients, default_resources

INBOX = "/api/v1/referrals"
LEEWAY = 30  # Settings.oidc_leeway, the default the idp_app runs with


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdP]:
    """A second, genuine OpenID Provider that the app does not trust (same kids: rsa-1)."""
    with TestIdP.start(
        tmp_path_factory.mktemp("other-idp"), default_clients(), default_resources()
    ) as idp:
        yield idp


def inbox_with(client: FlaskClient, token: str) -> Any:
    return client.get(INBOX, headers=bearer(token))


# --- positive controls ----------------------------------------------------------------


def test_provider_token_is_accepted(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    response = inbox_with(idp_client, oidc_provider.token("norrmalm-system"))
    assert response.status_code == 200, response.json
    assert response.json == {"items": [], "next_cursor": None}


def test_forged_baseline_with_the_provider_key_is_accepted(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """The forging helper makes tokens the app accepts: every negative below is one edit."""
    response = inbox_with(idp_client, forge(oidc_provider))
    assert response.status_code == 200, response.json


def test_es256_token_from_provider_is_accepted_by_default(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    token = oidc_provider.token("norrmalm-system", resource="urn:referrals-api:es256")
    assert header_of(token)["alg"] == "ES256"
    assert inbox_with(idp_client, token).status_code == 200


def test_lowercase_bearer_scheme_is_accepted(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """Auth schemes are case-insensitive (RFC 9110 §11.1)."""
    response = idp_client.get(
        INBOX, headers={"Authorization": f"bearer {oidc_provider.token('norrmalm-system')}"}
    )
    assert response.status_code == 200, response.json


# --- algorithm attacks ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_alg_none_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, alg: str, signature: str
) -> None:
    unsigned = sign(at_header(alg=alg), access_claims(oidc_provider.issuer), None)
    assert unsigned.endswith(".")
    assert_invalid_token(inbox_with(idp_client, unsigned + signature))


def _public_key_secrets(idp: TestIdP) -> dict[str, bytes]:
    """The RSA public key in each form an HS256 key-confusion attacker would try."""
    public = provider_key(idp).public_key()
    published = next(k for k in idp.http.get(idp.jwks_uri, timeout=5).json()["keys"])
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "spki-pem": spki,
        "spki-pem-no-newline": spki.rstrip(b"\n"),
        "pkcs1-pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "spki-der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(published).encode(),
        "jwk-json-compact": json.dumps(published, separators=(",", ":")).encode(),
        "jwk-n": published["n"].encode(),
    }


SECRET_FORMS = [
    "spki-pem",
    "spki-pem-no-newline",
    "pkcs1-pem",
    "spki-der",
    "jwk-json",
    "jwk-json-compact",
    "jwk-n",
]


@pytest.mark.parametrize("form", SECRET_FORMS)
@pytest.mark.parametrize(
    "algorithms",
    [None, ("RS256", "ES256", "HS256")],
    ids=["default-algorithms", "misconfigured-with-HS256"],
)
def test_hs256_signed_with_the_rsa_public_key_is_refused(
    make_idp_app: MakeApp,
    oidc_provider: TestIdP,
    form: str,
    algorithms: tuple[str, ...] | None,
) -> None:
    """Key confusion: the public key as an HMAC secret.  Refused even if an operator
    wrongly lists HS256 (the key is an RSA key published for RS256)."""
    overrides = {} if algorithms is None else {"oidc_algorithms": algorithms}
    client = make_idp_app(oidc_provider.issuer, **overrides).test_client()
    secret = _public_key_secrets(oidc_provider)[form]
    token = sign(at_header(alg="HS256"), access_claims(oidc_provider.issuer), secret)
    assert_invalid_token(inbox_with(client, token))


def test_es256_token_refused_when_only_rs256_is_allowed(
    make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_algorithms=("RS256",)).test_client()
    es256 = oidc_provider.token("norrmalm-system", resource="urn:referrals-api:es256")
    assert_invalid_token(inbox_with(client, es256))
    # The same app accepts the provider's RS256 token: the refusal is the algorithm.
    assert inbox_with(client, oidc_provider.token("norrmalm-system")).status_code == 200


@pytest.mark.parametrize(
    ("alg", "kid", "key_kid"),
    [("ES256", "rsa-1", "ec-1"), ("RS256", "ec-1", "rsa-1")],
    ids=["es256-header-rsa-kid", "rs256-header-ec-kid"],
)
def test_algorithm_must_match_the_key_it_names(
    idp_client: FlaskClient, oidc_provider: TestIdP, alg: str, kid: str, key_kid: str
) -> None:
    token = sign(
        at_header(kid=kid, alg=alg),
        access_claims(oidc_provider.issuer),
        provider_key(oidc_provider, key_kid),
    )
    assert_invalid_token(inbox_with(idp_client, token))


# --- the token naming its own key -------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa-1", "attacker-1"])
def test_embedded_jwk_header_is_refused(
    idp_client: FlaskClient,
    oidc_provider: TestIdP,
    attacker_key: rsa.RSAPrivateKey,
    kid: str,
) -> None:
    header = at_header(kid=kid, jwk=public_jwk(attacker_key, kid))
    token = sign(header, access_claims(oidc_provider.issuer), attacker_key)
    assert_invalid_token(inbox_with(idp_client, token))


def test_embedded_x5c_certificate_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, attacker_key: rsa.RSAPrivateKey
) -> None:
    der = self_signed_der(attacker_key)
    header = at_header(kid="attacker-1", x5c=[base64.b64encode(der).decode()])
    token = sign(header, access_claims(oidc_provider.issuer), attacker_key)
    assert_invalid_token(inbox_with(idp_client, token))


@pytest.mark.parametrize("header_name", ["jku", "x5u"])
@pytest.mark.parametrize("kid", ["rsa-1", "attacker-1"])
def test_key_url_headers_are_refused_and_never_fetched(
    idp_client: FlaskClient,
    oidc_provider: TestIdP,
    attacker_key: rsa.RSAPrivateKey,
    header_name: str,
    kid: str,
) -> None:
    with recording_server({"keys": [public_jwk(attacker_key, kid)]}) as server:
        # The recorder works: a request made on purpose is seen.
        assert requests.get(f"{server.url}/probe", timeout=5).status_code == 200
        header = at_header(kid=kid, **{header_name: f"{server.url}/jwks.json"})
        token = sign(header, access_claims(oidc_provider.issuer), attacker_key)

        assert_invalid_token(inbox_with(idp_client, token))
        assert server.seen == ["/probe"]


def test_crit_header_is_refused(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    header = at_header(crit=["urn:example:unknown"], **{"urn:example:unknown": True})
    token = sign(header, access_claims(oidc_provider.issuer), provider_key(oidc_provider))
    assert_invalid_token(inbox_with(idp_client, token))


# --- key ids ----------------------------------------------------------------------------


def test_unknown_kid_is_refused(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    token = forge(oidc_provider, header=at_header(kid=f"rsa-{uuid.uuid4().hex}"))
    assert_invalid_token(inbox_with(idp_client, token))


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "rsa-1/../rsa-1",
        "file:///etc/passwd",
        "http://127.0.0.1:1/jwks",
        "rsa-1\u0000",
        "' OR '1'='1",
        "",
        "r" * 129,
        7,
        None,
        ["rsa-1"],
        {"kid": "rsa-1"},
    ],
)
def test_malformed_kid_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, kid: Any
) -> None:
    header = {"typ": "at+jwt", "alg": "RS256", "kid": kid}
    if kid is None:
        del header["kid"]
    assert_invalid_token(inbox_with(idp_client, forge(oidc_provider, header=header)))


# --- time claims, signed with the issuer's own key --------------------------------------


@pytest.mark.parametrize(
    ("edits", "accepted"),
    [
        ({"iat": -600, "exp": -LEEWAY - 90}, False),
        ({"iat": -600, "exp": -LEEWAY + 20}, True),
        ({"nbf": LEEWAY + 90}, False),
        ({"nbf": LEEWAY - 20}, True),
        ({"iat": LEEWAY + 90, "exp": 600}, False),
        ({"iat": LEEWAY - 20}, True),
    ],
    ids=[
        "expired-beyond-leeway",
        "expired-within-leeway",
        "nbf-beyond-leeway",
        "nbf-within-leeway",
        "iat-in-the-future-beyond-leeway",
        "iat-in-the-future-within-leeway",
    ],
)
def test_time_claims_with_leeway(
    idp_client: FlaskClient, oidc_provider: TestIdP, edits: dict[str, int], accepted: bool
) -> None:
    now = int(time.time())
    token = forge(oidc_provider, **{name: now + offset for name, offset in edits.items()})
    response = inbox_with(idp_client, token)
    if accepted:
        assert response.status_code == 200, response.json
    else:
        assert_invalid_token(response)


@pytest.mark.parametrize("claim", ["aud", "iss", "exp", "sub", "iat"])
def test_missing_required_claim_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, claim: str
) -> None:
    assert_invalid_token(inbox_with(idp_client, forge(oidc_provider, omit=(claim,))))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", "account"),
        ("aud", "referrals-api "),
        ("aud", ["account"]),
        ("aud", []),
        ("aud", 42),
        ("sub", ""),
        ("sub", 42),
        ("sub", ["norrmalm-system"]),
        ("exp", "9999999999"),
        ("exp", True),
        ("exp", None),
        ("iat", "0"),
        ("nbf", "later"),
    ],
)
def test_malformed_claim_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, claim: str, value: Any
) -> None:
    assert_invalid_token(inbox_with(idp_client, forge(oidc_provider, **{claim: value})))


def test_audience_list_including_the_api_is_accepted(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """RFC 7519 §4.1.3: a list audience is valid when it names this resource server."""
    token = forge(oidc_provider, aud=["account", "referrals-api"])
    assert inbox_with(idp_client, token).status_code == 200


def test_nan_expiry_is_refused(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    """json.loads reads NaN; a NaN ``exp`` compares false to everything and never expires."""
    claims = json.dumps(access_claims(oidc_provider.issuer, exp=float("nan")))
    assert '"exp": NaN' in claims
    token = sign(at_header(), claims.encode(), provider_key(oidc_provider))
    assert_invalid_token(inbox_with(idp_client, token))


# --- issuers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_issuer",
    [
        lambda issuer: issuer + "/",
        lambda issuer: issuer.upper(),
        lambda issuer: issuer.replace("http://", "https://"),
        lambda issuer: "urn:referrals:development-issuer",
        lambda issuer: "",
    ],
    ids=["trailing-slash", "uppercase", "https", "dev-issuer", "empty"],
)
def test_other_issuer_with_the_real_key_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, make_issuer: Callable[[str], str]
) -> None:
    token = forge(oidc_provider, iss=make_issuer(oidc_provider.issuer))
    assert_invalid_token(inbox_with(idp_client, token))


@pytest.mark.parametrize(
    "iss",
    [["ISSUER"], {"iss": "ISSUER"}, 42, True],
    ids=["list", "object", "number", "boolean"],
)
def test_non_string_issuer_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, iss: Any
) -> None:
    """An unauthenticated caller controls every claim before the signature is checked."""
    value = json.loads(json.dumps(iss).replace("ISSUER", oidc_provider.issuer))
    assert_invalid_token(inbox_with(idp_client, forge(oidc_provider, iss=value)))


def test_token_from_another_provider_is_refused(
    idp_client: FlaskClient, other_provider: TestIdP
) -> None:
    assert_invalid_token(inbox_with(idp_client, other_provider.token("norrmalm-system")))


def test_other_provider_key_with_our_issuer_and_kid_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, other_provider: TestIdP
) -> None:
    """Same kid ("rsa-1"), trusted iss, but signed by someone else's key."""
    token = sign(at_header(), access_claims(oidc_provider.issuer), provider_key(other_provider))
    assert_invalid_token(inbox_with(idp_client, token))


def test_development_token_is_refused_when_dev_tokens_are_off(
    idp_client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    assert_invalid_token(inbox_with(idp_client, dev_token("caseworker", "norrmalm")))


# --- the wrong kind of token ------------------------------------------------------------


@pytest.fixture(scope="module")
def id_token(oidc_provider: TestIdP) -> str:
    return oidc_provider.id_token(login="testa-testsson")


@pytest.mark.parametrize("accept_jwt_typ", [False, True])
def test_id_token_is_not_an_access_token(
    make_idp_app: MakeApp, oidc_provider: TestIdP, id_token: str, accept_jwt_typ: bool
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_accept_jwt_typ=accept_jwt_typ).test_client()
    assert_invalid_token(inbox_with(client, id_token))


@pytest.mark.parametrize(
    ("typ", "default_accepts", "jwt_typ_accepts"),
    [
        ("at+jwt", True, True),
        ("application/at+jwt", True, True),
        ("AT+JWT", True, True),
        ("JWT", False, True),
        (None, False, False),
        ("id_token+jwt", False, False),
        ("", False, False),
        (["at+jwt"], False, False),
    ],
)
@pytest.mark.parametrize("accept_jwt_typ", [False, True])
def test_typ_header(
    make_idp_app: MakeApp,
    oidc_provider: TestIdP,
    typ: Any,
    default_accepts: bool,
    jwt_typ_accepts: bool,
    accept_jwt_typ: bool,
) -> None:
    client = make_idp_app(oidc_provider.issuer, oidc_accept_jwt_typ=accept_jwt_typ).test_client()
    response = inbox_with(client, forge(oidc_provider, header=at_header(typ=typ)))
    if jwt_typ_accepts if accept_jwt_typ else default_accepts:
        assert response.status_code == 200, response.json
    else:
        assert_invalid_token(response)


@pytest.mark.parametrize(
    ("claim_edits", "accepted"),
    [
        ({}, True),
        ({"typ": "Bearer"}, True),
        ({"typ": "ID"}, False),
        ({"typ": "Refresh"}, False),
        ({"nonce": "n-0S6_WzA2Mj"}, False),
        ({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}, False),
        ({"c_hash": "LDktKdoQak3Pk0cnXxCltA"}, False),
    ],
    ids=["plain", "keycloak-bearer", "keycloak-id", "refresh", "nonce", "at_hash", "c_hash"],
)
def test_typ_jwt_token_must_look_like_an_access_token(
    make_idp_app: MakeApp, oidc_provider: TestIdP, claim_edits: dict[str, str], accepted: bool
) -> None:
    """With ``typ: JWT`` allowed the header no longer tells an ID token from an access
    token, so ID-token claims (or Keycloak's typ claim) decide; the audience is ours."""
    client = make_idp_app(oidc_provider.issuer, oidc_accept_jwt_typ=True).test_client()
    token = forge(oidc_provider, header=at_header(typ="JWT"), **claim_edits)
    response = inbox_with(client, token)
    if accepted:
        assert response.status_code == 200, response.json
    else:
        assert_invalid_token(response)


# --- tampering --------------------------------------------------------------------------


def _tamper_unit(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    assert claims["unit"] == "norrmalm"
    claims["unit"] = "sodermalm"
    return f"{header}.{part(claims)}.{signature}"


def _flip_one_payload_char(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "B" if payload[middle] != "B" else "C"
    edited = payload[:middle] + flipped + payload[middle + 1 :]
    assert b64url_decode(edited) != b64url_decode(payload)
    return f"{header}.{edited}.{signature}"


def _swap_kid(token: str) -> str:
    header, payload, signature = token.split(".")
    fields = json.loads(b64url_decode(header))
    return f"{part(fields | {'kid': 'ec-1'})}.{payload}.{signature}"


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "claim-edited": _tamper_unit,
    "one-payload-character": _flip_one_payload_char,
    "header-kid-swapped": _swap_kid,
    "signature-removed": lambda t: t.rsplit(".", 1)[0] + ".",
    "signature-truncated": lambda t: t[:-10],
    "signature-zeroed": lambda t: t.rsplit(".", 1)[0] + "." + b64url(bytes(256)),
    "two-segments": lambda t: t.rsplit(".", 1)[0],
    "four-segments": lambda t: t + ".e30",
    "five-segments-jwe-shape": lambda t: t + ".e30.e30",
    "padding-added": lambda t: t + "==",
    "whitespace-inside": lambda t: t.replace(".", ". ", 1),
    "payload-only": lambda t: t.split(".")[1],
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_tampered_provider_token_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, tamper: str
) -> None:
    token = oidc_provider.token("norrmalm-system")
    assert inbox_with(idp_client, token).status_code == 200
    assert_invalid_token(inbox_with(idp_client, TAMPERINGS[tamper](token)))


def test_signature_of_another_valid_token_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    ours = oidc_provider.token("norrmalm-system")
    theirs = oidc_provider.token("sodermalm-system")
    spliced = ".".join([*theirs.split(".")[:2], ours.split(".")[2]])
    assert_invalid_token(inbox_with(idp_client, spliced))


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (b"[]", b"{}"),
        (b'"at+jwt"', b"{}"),
        (b"null", b"{}"),
        (b"{", b"{}"),
        (b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', b"[]"),
        (b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', b'"claims"'),
        (b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', b"not json"),
        (b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', b"\xff\xfe"),
    ],
)
def test_structurally_broken_token_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, header: bytes, payload: bytes
) -> None:
    assert_invalid_token(inbox_with(idp_client, sign(header, payload, provider_key(oidc_provider))))


@pytest.mark.parametrize(
    "payload",
    [b"[" * 3_000, b'{"a":' * 1_100, b'{"iss":' + b"[" * 3_000],
    ids=["nested-arrays", "nested-objects", "nested-issuer"],
)
def test_deeply_nested_payload_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, payload: bytes
) -> None:
    """Under the 8 kB header cap, yet deep enough to exhaust the JSON parser's recursion:
    an unauthenticated caller must get 401, not a 500 with a logged traceback."""
    token = sign(at_header(), payload, provider_key(oidc_provider))
    assert len(token) < 8192
    assert_invalid_token(inbox_with(idp_client, token))


@pytest.mark.parametrize(
    "value",
    ["Bearer ä.ö.å", "Bearer \u00a0", "Bearer a b c", "Bearer ...", "Bearer %2e%2e"],
)
def test_garbage_bearer_values_are_refused(idp_client: FlaskClient, value: str) -> None:
    assert_invalid_token(idp_client.get(INBOX, headers={"Authorization": value}))


# --- where the token travels ------------------------------------------------------------


def test_token_in_query_string_is_refused(idp_client: FlaskClient, oidc_provider: TestIdP) -> None:
    token = oidc_provider.token("norrmalm-system")
    assert_unauthenticated(idp_client.get(INBOX, query_string={"access_token": token}))


def test_token_in_query_string_is_refused_even_with_a_valid_header(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    token = oidc_provider.token("norrmalm-system")
    response = idp_client.get(INBOX, query_string={"access_token": token}, headers=bearer(token))
    assert_unauthenticated(response)


def test_token_in_form_body_is_not_a_credential(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """RFC 6750 §2.2 form-encoded bodies are not supported."""
    token = oidc_provider.token("ungdomsjouren-app")
    assert_unauthenticated(idp_client.post(INBOX, data={"access_token": token}))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param("", id="empty-header"),
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer ", id="bearer-empty"),
        pytest.param("Bearer    ", id="bearer-spaces"),
        pytest.param("Basic " + base64.b64encode(b"norrmalm-system:secret").decode(), id="basic"),
        pytest.param("Digest username=norrmalm-system", id="digest"),
        pytest.param("Negotiate YIIB", id="negotiate"),
    ],
)
def test_missing_or_non_bearer_credentials(
    idp_client: FlaskClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthenticated(idp_client.get(INBOX, headers=headers))


@pytest.mark.parametrize("scheme", ["DPoP", "MAC", "Token", "JWT"])
def test_valid_token_under_another_scheme_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP, scheme: str
) -> None:
    token = oidc_provider.token("norrmalm-system")
    assert_unauthenticated(idp_client.get(INBOX, headers={"Authorization": f"{scheme} {token}"}))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer " + "A" * 1_048_576, id="1MB-bearer"),
        pytest.param("x" * 1_048_576, id="1MB-garbage-no-scheme"),
        pytest.param("Bearer " + "." * 1_048_576, id="1MB-dots"),
        pytest.param("Bearer " + "a." * 4_000, id="8KB-of-segments"),
        pytest.param("Bearer " + "e30" * 2_700, id="8KB-base64"),
    ],
)
def test_oversized_or_pathological_header_is_refused_quickly(
    idp_client: FlaskClient, authorization: str
) -> None:
    started = time.perf_counter()
    response = idp_client.get(INBOX, headers={"Authorization": authorization})
    elapsed = time.perf_counter() - started
    assert_unauthenticated(response)
    assert elapsed < 1.0


def test_oversized_valid_looking_token_is_refused(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """A signed token padded with a 10 kB claim is over the header cap, whatever it says."""
    token = forge(oidc_provider, padding="p" * 10_000)
    assert len(token) > 8192
    assert_invalid_token(inbox_with(idp_client, token))


def test_identity_headers_beside_the_token_are_ignored(
    idp_client: FlaskClient, oidc_provider: TestIdP
) -> None:
    """Proxy-style identity headers cannot turn a sodermalm token into a norrmalm caller."""
    token = oidc_provider.token("sodermalm-system")
    worker = bearer(oidc_provider.token("ungdomsjouren-app"))
    created = idp_client.post(
        INBOX,
        json={
            "subject": {"name": "Testa Provsson", "district": "norrmalm"},
            "categories": ["other"],
            "priority": "normal",
            "legal_basis": "duty_to_report",
            "submit": True,
        },
        headers=worker,
    )
    assert created.status_code == 201, created.json
    response = idp_client.get(
        INBOX,
        headers={
            **bearer(token),
            "X-Forwarded-User": "norrmalm-system",
            "X-Unit": "norrmalm",
            "X-Roles": "caseworker",
        },
    )
    assert response.status_code == 200
    assert response.json["items"] == []
