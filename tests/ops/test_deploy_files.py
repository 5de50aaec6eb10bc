"""What deploy/ ships: no usable credential, and no statement the code has outgrown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from referrals import create_app
from referrals.config import ConfigError
from tests.ops.test_config import production

DEPLOY = Path(__file__).parents[2] / "deploy"
REALM = DEPLOY / "keycloak" / "referrals-realm.json"
# Keys under which a Keycloak export carries a credential.
CREDENTIAL_KEYS = {"secret", "value", "password", "hashedSaltedValue", "credentials"}


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_the_realm_export_ships_no_credential() -> None:
    realm = json.loads(REALM.read_text())
    shipped = [f"{path}.{key}" for path, key, _ in _walk(realm) if key in CREDENTIAL_KEYS]
    assert shipped == []
    assert "CHANGE-ME" not in REALM.read_text()


def test_confidential_clients_authenticate_with_what_the_import_generates() -> None:
    """No secret in the file: Keycloak generates a random one on import for a
    confidential client using client-secret, so no two imports share a credential."""
    clients = json.loads(REALM.read_text())["clients"]
    confidential = [c for c in clients if not c.get("publicClient", False)]
    assert confidential, "the export should still show a unit's system client"
    for client in confidential:
        assert client["clientAuthenticatorType"] in ("client-secret", "client-jwt")
        assert "secret" not in client


def test_the_deploy_readme_does_not_say_https_is_unenforced(tmp_path: Path) -> None:
    text = " ".join((DEPLOY / "README.md").read_text().split())
    assert "not enforce" not in text
    assert "CHANGE-ME" not in text
    # ... because it is enforced:
    plain = production(tmp_path).with_overrides(oidc_issuer="http://idp.example.org/realms/x")
    with pytest.raises(ConfigError, match="https"):
        create_app(plain)


def test_the_realm_export_maps_eid_assurance_to_the_acr_claim() -> None:
    """deploy/README.md's Keycloak mapping for REFERRALS_OIDC_REQUIRED_ACR is in the file."""
    realm = json.loads(REALM.read_text())
    loa3 = "http://id.elegnamnden.se/loa/1.0/loa3"
    assert json.loads(realm["attributes"]["acr.loa.map"]) == {loa3: "3"}
    acr = next(s for s in realm["clientScopes"] if s["name"] == "acr")
    [mapper] = acr["protocolMappers"]
    assert mapper["protocolMapper"] == "oidc-acr-mapper"
    assert mapper["config"]["access.token.claim"] == "true"
    web = next(c for c in realm["clients"] if c["clientId"] == "referrals-web")
    assert "acr" in web["defaultClientScopes"]
    assert json.loads(web["attributes"]["acr.loa.map"]) == {loa3: "3"}
