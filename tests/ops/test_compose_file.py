"""deploy/compose.yaml against the Compose specification's JSON schema, and the rules the
stack must keep (hardening, health checks, networks, secrets from files)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.compose_stack import COMPOSE_FILE, load_compose

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
REFERRALS_SERVICES = ("migrate", "app", "worker", "sealer")


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def raw() -> dict[str, Any]:
    """The file as written: the schema is checked before merge keys are resolved too."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = sorted(validator().iter_errors(raw()), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["services"]["app"]["depends_on"]["migrate"].update(condition="finished"),
        lambda c: c["services"]["app"].update(healthcheck={"test": "x", "interval": 10}),
        lambda c: c["services"]["app"].update(secrets="keyring"),
        lambda c: c["services"]["app"].update(unknown_key=True),
        lambda c: c["secrets"]["keyring"].update(mode="0400", path="x"),
    ],
    ids=["condition", "interval", "secrets", "unknown key", "secret definition"],
)
def test_the_schema_check_refuses_a_broken_file(break_it: Any) -> None:
    broken = copy.deepcopy(raw())
    break_it(broken)
    assert list(validator().iter_errors(broken))


def test_every_referrals_container_is_hardened_and_unprivileged() -> None:
    services = load_compose()["services"]
    for name in REFERRALS_SERVICES:
        service = services[name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "cap_add" not in service, name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "privileged" not in service, name


def test_health_checks_and_start_order() -> None:
    services = load_compose()["services"]
    for name in ("postgres", "keycloak", "app", "sealer"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("app", "worker", "sealer"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert "/readyz" in " ".join(services["app"]["healthcheck"]["test"])
    assert services["sealer"]["healthcheck"]["test"][1:] == ["referrals", "audit", "verify"]


def test_networks_separate_the_database_and_the_workers_egress() -> None:
    compose = load_compose()
    services = compose["services"]
    assert compose["networks"]["database"]["internal"] is True
    assert services["postgres"]["networks"] == ["database"]
    assert services["sealer"]["networks"] == ["database"]
    assert services["migrate"]["networks"] == ["database"]
    assert set(services["worker"]["networks"]) == {"database", "egress"}
    assert set(services["app"]["networks"]) == {"database", "frontend"}
    assert "ports" not in services["postgres"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name


def test_every_secret_is_a_file_in_the_ignored_secrets_folder() -> None:
    compose = load_compose()
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith("./secrets/"), name
    used = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    assert used == set(compose["secrets"])
