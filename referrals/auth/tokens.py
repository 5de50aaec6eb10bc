"""Validation of bearer JWT access tokens (RFC 9068) with authlib and joserfc.

authlib's stock ``JWTBearerTokenValidator`` lets the token's own header choose the
algorithm, accepts a token without ``typ`` and validates time claims without leeway;
this subclass closes each of those gaps.  Every check that fails raises
``InvalidTokenError`` with a short, token-free description for logs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6750.errors import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from cachetools import TLRUCache
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jwt import JWTClaimsRegistry

from referrals.auth.keys import KeySource
from referrals.auth.principal import ClaimedActor

# RFC 9068 §2.1; "JWT" is only accepted when configured (Keycloak, some Azure setups).
_ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
# With plain "JWT" the header no longer tells access tokens from ID tokens, so look at
# the claims: Keycloak marks its tokens with a "typ" claim, and nonce/at_hash/c_hash
# only ever appear in ID tokens (OIDC Core §2, §3.1.3.6).
_ID_TOKEN_CLAIMS = {"nonce", "at_hash", "c_hash"}
# Headers that would let the token name its own key.  We never follow them; a token that
# carries one is not from an issuer we trust, so it is refused outright.
_FORBIDDEN_HEADERS = {"jku", "jwk", "x5u", "x5c", "crit"}
# Key ids are looked up in a dict, never used as a path or URL; still, refuse anything
# that is not a plain identifier so that a "../" kid never reaches a log or a cache key.
_KID = re.compile(r"^[A-Za-z0-9._~-]{1,128}\Z")
# Tokens whose signature has been verified, kept per process (see ``_Verified``).
VERIFIED_CACHE_SIZE = 4096


class RejectedToken(InvalidTokenError):  # type: ignore[misc]
    """An invalid token, with the reason kept for logs (never sent to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    keys: KeySource
    # Allow-list for this issuer; the token's "alg" header must be one of these.
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class _Verified:
    """A token whose signature checked out, under the SHA-256 of the whole token string.

    Only the signature check (and the parsing before it) is skipped on a hit: the key must
    still be the one the issuer publishes under that ``kid`` (a key the issuer withdrew
    ends every cached token it signed), and ``validate_token`` checks the claims (expiry,
    audience, issuer, scope) on every request.  An entry leaves the cache at the token's
    expiry at the latest; the cache is bounded (``VERIFIED_CACHE_SIZE``, least recently
    used out first).  Any change to the token, a single bit of its signature included,
    is another digest: a miss, and the full verification."""

    # As JSON: every hit gets its own copy (json.loads is far cheaper than deepcopy).
    claims: str
    header: dict[str, Any]
    issuer: str
    kid: str
    key: Key
    expires: float


class AccessTokenValidator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(
        self,
        issuers: Collection[TrustedIssuer],
        *,
        audience: str,
        leeway: int,
        accept_jwt_typ: bool,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(issuer=None, resource_server=audience)
        self._issuers = {i.issuer: i for i in issuers}
        self._audience = audience
        self._leeway = leeway
        self._types = _ACCESS_TOKEN_TYPES | ({"jwt"} if accept_jwt_typ else set())
        self._now = now
        # cachetools caches are not thread-safe: gthread workers share this one.
        self._lock = threading.Lock()
        self._verified: TLRUCache[bytes, _Verified] = TLRUCache(
            maxsize=VERIFIED_CACHE_SIZE, ttu=lambda _k, v, _now: v.expires, timer=now
        )

    def authenticate_token(self, token_string: str) -> JWTAccessTokenClaims:
        # Only ASCII tokens are compact JWS at all (``_peek`` refuses the rest): the digest
        # is of exactly the bytes that were verified.
        digest = (
            hashlib.sha256(token_string.encode("ascii")).digest()
            if token_string.isascii()
            else None
        )
        if digest is not None:
            with self._lock:
                hit = self._verified.get(digest)
            if hit is not None:
                trusted = self._issuers.get(hit.issuer)
                key = trusted.keys.find(hit.kid) if trusted is not None else None
                if key is None:
                    # What the full check would conclude for these very bytes, without a
                    # second look-up (which may refetch the issuer's keys).
                    with self._lock:
                        self._verified.pop(digest, None)
                    raise RejectedToken("unknown key id")
                if key is hit.key:
                    return JWTAccessTokenClaims(json.loads(hit.claims), dict(hit.header))
        claims, key = self._verify(token_string)
        expires = claims.get("exp")
        if digest is not None and _finite_number(expires):
            entry = _Verified(
                claims=json.dumps(dict(claims)),
                header=dict(claims.header),
                issuer=claims["iss"],
                kid=claims.header["kid"],
                key=key,
                expires=expires,
            )
            with self._lock:
                self._verified[digest] = entry
        return claims

    def _verify(self, token_string: str) -> tuple[JWTAccessTokenClaims, Key]:
        """The full check of a token's header and signature; the claims and the key."""
        header, unverified = _peek(token_string)
        alg, kid = header.get("alg"), header.get("kid")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in self._types:
            raise RejectedToken("typ is not an access token type")
        if typ.lower() == "jwt" and not _looks_like_access_token(unverified):
            raise RejectedToken("an ID token or other JWT, not an access token")
        if _FORBIDDEN_HEADERS & header.keys():
            raise RejectedToken("token header names its own key")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise RejectedToken("missing or malformed kid")
        issuer = unverified.get("iss")
        trusted = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise RejectedToken("untrusted issuer")
        if alg not in trusted.algorithms:
            raise RejectedToken("algorithm not allowed")
        key = trusted.keys.find(kid)
        if key is None:
            raise RejectedToken("unknown key id")
        key_alg = key.get("alg")
        if key_alg is not None and key_alg != alg:
            raise RejectedToken("algorithm does not match the key")
        try:
            token = jwt.decode(token_string, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise RejectedToken("bad signature or malformed token") from exc
        return JWTAccessTokenClaims(token.claims, token.header), key

    def validate_token(
        self, token: JWTAccessTokenClaims, scopes: list[str] | None, request: object
    ) -> None:
        registry = JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=self._leeway,
            iss={"essential": True, "value": token.get("iss")},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(token)
        except JoseError as exc:
            raise RejectedToken(f"claim check failed: {exc.error}") from exc
        if not isinstance(token.get("sub"), str) or not token["sub"]:
            raise RejectedToken("empty subject")
        if self.scope_insufficient(_scope_claim(token), scopes):
            raise InsufficientScopeError()


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _peek(token_string: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """Header and claims before verification, used only to pick the issuer and key."""
    try:
        compact = jws.extract_compact(token_string.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, RecursionError) as exc:
        # RecursionError: a few kilobytes of nested arrays must cost a 401, not a 500.
        raise RejectedToken("not a compact JWS") from exc
    if not isinstance(claims, dict):
        raise RejectedToken("claims are not an object")
    return dict(compact.headers()), claims


def claimed_actor(authorization: str | None) -> ClaimedActor | None:
    """Issuer and subject a bearer token *claims*, for the audit of a refused request.

    Never used to decide anything; short strings only, so a forged token cannot stuff
    the audit trail."""
    if not authorization or len(authorization) > 8192:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        _header, claims = _peek(token.strip())
    except RejectedToken:
        return None
    issuer, subject = claims.get("iss"), claims.get("sub")
    return ClaimedActor(
        issuer=issuer[:500] if isinstance(issuer, str) else None,
        subject=subject[:500] if isinstance(subject, str) else None,
    )


def _looks_like_access_token(claims: Mapping[str, Any]) -> bool:
    if _ID_TOKEN_CLAIMS & claims.keys():
        return False
    return bool(claims.get("typ", "Bearer") == "Bearer")


def _scope_claim(token: Mapping[str, Any]) -> str | list[str]:
    scope = token.get("scope")
    if isinstance(scope, str):
        return scope
    scp = token.get("scp")  # Azure AD
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return scp if isinstance(scp, str) else []
