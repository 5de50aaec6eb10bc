"""Hand-built JWS compact tokens, for attacks that a JOSE library refuses to produce.

Everything here is deliberately low-level (base64url, JSON, raw signatures with
``cryptography``) so that a test can set any header, drop any claim or sign with any
secret, exactly as an attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.idp import TestIdP

RsaOrEc = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# The claims the test provider puts into a norrmalm-system access token.
API_AUDIENCE = "referrals-api"
RW_SCOPE = "referrals:read referrals:write"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_of(token: str) -> dict[str, Any]:
    """The (unverified) JOSE header of a compact token."""
    return dict(json.loads(b64url_decode(token.split(".")[0])))


def part(value: Mapping[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def sign(
    header: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    key: RsaOrEc | bytes | None,
) -> str:
    """A compact JWS; the signature algorithm follows the key, not the header.

    ``key`` is an RSA key (RS256), an EC P-256 key (ES256), bytes (HMAC-SHA256 with those
    bytes as the secret) or None (an empty signature, as for ``alg: none``).
    """
    signing_input = f"{part(header)}.{part(payload)}".encode("ascii")
    if key is None:
        signature = b""
    elif isinstance(key, bytes):
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def provider_key(idp: TestIdP, kid: str = "rsa-1") -> Any:
    """The provider's own private signing key (cryptography object)."""
    return idp.keys.get_by_kid(kid).private_key


def access_claims(
    issuer: str,
    *,
    client: str = "norrmalm-system",
    roles: Any = ("caseworker",),
    unit: Any = "norrmalm",
    lifetime: int = 300,
    now: float | None = None,
    omit: tuple[str, ...] = (),
    **changes: Any,
) -> dict[str, Any]:
    """Claims shaped like the provider's client_credentials tokens, with edits."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client,
        "aud": API_AUDIENCE,
        "client_id": client,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": RW_SCOPE,
        "roles": list(roles) if isinstance(roles, tuple) else roles,
        "unit": unit,
    }
    claims |= changes
    for name in omit:
        claims.pop(name, None)
    return claims


def at_header(kid: str = "rsa-1", alg: str = "RS256", **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"typ": "at+jwt", "alg": alg, "kid": kid}
    header |= changes
    return {k: v for k, v in header.items() if v is not None}


def forge(idp: TestIdP, *, header: Mapping[str, Any] | None = None, **claim_edits: Any) -> str:
    """A token signed with the provider's real RSA key: what the provider could have issued."""
    return sign(
        header if header is not None else at_header(),
        access_claims(idp.issuer, **claim_edits),
        provider_key(idp),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
