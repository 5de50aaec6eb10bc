"""Turn an HTTP request's ``Authorization`` header into a Principal, or refuse.

authlib's ``ResourceProtector`` parses the header and drives the validator; this
module adds what a resource server owes its callers: a size cap before any parsing,
refusal of tokens in URLs, and errors mapped to 401/403/503 with safe reasons.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error, ResourceProtector
from werkzeug.datastructures import Headers

from referrals.auth.claims import principal_from_claims
from referrals.auth.keys import KeysUnavailable
from referrals.auth.principal import Principal, Role
from referrals.auth.tokens import AccessTokenValidator, RejectedToken

# Far above any real access token, far below anything that costs memory to parse.
MAX_AUTHORIZATION_HEADER = 8192


class AuthenticationFailed(Exception):
    """401: no usable credentials.  ``reason`` is for logs, never for the client.

    ``credentials_sent`` tells a request without any token (RFC 6750 §3.1: challenge
    without an error code) from one whose token was refused."""

    def __init__(self, reason: str, *, credentials_sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.credentials_sent = credentials_sent


class StepUpRequired(AuthenticationFailed):
    """401 with RFC 9470's challenge: a valid token, but the person signed in with an
    assurance (``acr``) their role does not accept.  Carries the verified principal, so
    the refusal is audited under the real actor, and the ``acr`` values that would do."""

    def __init__(self, principal: Principal, acr_values: Collection[str]) -> None:
        super().__init__("insufficient user authentication")
        self.principal = principal
        self.acr_values = tuple(sorted(acr_values))


class ScopeMissing(Exception):
    """403: a valid token without the scope this endpoint group needs.

    Carries the (verified) principal, so the refusal is audited under the real actor."""

    def __init__(self, principal: Principal) -> None:
        super().__init__("insufficient scope")
        self.principal = principal


class IdentityProviderUnavailable(Exception):
    """503: the issuer's keys cannot be fetched right now."""


@dataclass(frozen=True)
class _Request:
    headers: Mapping[str, str]


class Authenticator:
    def __init__(
        self,
        validator: AccessTokenValidator,
        *,
        roles_claim: str,
        unit_claim: str,
        required_acr: Mapping[Role, Collection[str]] | None = None,
    ) -> None:
        self._protector = ResourceProtector()
        self._protector.register_token_validator(validator)
        self._roles_claim = roles_claim
        self._unit_claim = unit_claim
        self._required_acr = {role: frozenset(v) for role, v in (required_acr or {}).items()}

    def authenticate(
        self,
        headers: Mapping[str, str] | Headers,
        query_keys: Collection[str],
        scopes: Collection[str],
    ) -> Principal:
        if "access_token" in query_keys:
            # RFC 6750 §2.3 allows it; we do not: URLs end up in logs and histories.
            raise AuthenticationFailed("token in the query string")
        authorization = headers.get("Authorization", "")
        if not authorization.strip():
            raise AuthenticationFailed("no credentials", credentials_sent=False)
        if len(authorization) > MAX_AUTHORIZATION_HEADER:
            raise AuthenticationFailed("oversized Authorization header")
        try:
            # The token first, with no scope required; the scope check follows once the
            # caller is known, so a 403 names who was refused.
            token = self._protector.validate_request([], _Request({"Authorization": authorization}))
        except KeysUnavailable as exc:
            raise IdentityProviderUnavailable(str(exc)) from exc
        except RejectedToken as exc:
            raise AuthenticationFailed(exc.reason) from exc
        except OAuth2Error as exc:
            raise AuthenticationFailed(exc.error or "invalid token") from exc
        principal = principal_from_claims(
            token, roles_claim=self._roles_claim, unit_claim=self._unit_claim
        )
        if not principal.names_are_storable():
            # Who a token names goes into every audit event: text the trail cannot keep
            # (a NUL, a lone surrogate) would fail the audit write and answer 503.  A token
            # naming its holder so is no credential, whoever signed it.
            raise AuthenticationFailed("token names its holder in unreadable text")
        # Any one of ``scopes`` suffices (an empty list: any valid token).
        if scopes and not any(scope in principal.scopes for scope in scopes):
            raise ScopeMissing(principal)
        accepted = self._accepted_acr(principal)
        if accepted is not None and token.get("acr") not in accepted:
            raise StepUpRequired(principal, accepted)
        return principal

    def _accepted_acr(self, principal: Principal) -> frozenset[str] | None:
        """The ``acr`` values every one of the caller's roles accepts; None: no demand.

        A token holding two roles must satisfy both (the stricter wins)."""
        demands = [self._required_acr[r] for r in principal.roles if r in self._required_acr]
        if not demands:
            return None
        return frozenset.intersection(*demands)

    def authenticate_token(self, access_token: str, scopes: Collection[str]) -> Principal:
        """The same checks for a token held server-side (the web front end's session)."""
        return self.authenticate({"Authorization": f"Bearer {access_token}"}, (), scopes)
