"""Map the claims of a validated access token to a Principal.

Claim names differ between identity providers (Keycloak nests roles under
``realm_access.roles``, Azure AD sends ``scp``), so the roles and unit claims are
configurable dotted paths.  Unknown role names are ignored rather than trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from referrals.auth.principal import Principal, Role

_KNOWN_ROLES = {role.value: role for role in Role}


def principal_from_claims(
    claims: Mapping[str, Any], *, roles_claim: str, unit_claim: str
) -> Principal:
    roles = frozenset(
        _KNOWN_ROLES[r] for r in _role_names(_lookup(claims, roles_claim)) if r in _KNOWN_ROLES
    )
    unit = _lookup(claims, unit_claim)
    client_id = claims.get("client_id") or claims.get("azp")
    return Principal(
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        client_id=str(client_id) if client_id else None,
        roles=roles,
        unit=unit if isinstance(unit, str) and unit else None,
        scopes=frozenset(_scopes(claims)),
    )


def _role_names(raw: Any) -> list[str]:
    """A list of strings or one space-separated string; anything else grants nothing.

    (Iterating an object would read its keys: {"caseworker": false} must not make a
    caseworker.)"""
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [r for r in raw if isinstance(r, str)]
    return []


def _lookup(claims: Mapping[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    if isinstance(scp, str):
        return scp.split()
    return []
