"""``referrals seed``: the packaged Stockholm set-up and an organisation's own seed file.

Run through the CLI as an operator would, against a fresh SQLite instance; what was stored
is then read back through the app's own repositories and routing engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from referrals import create_app
from referrals.api.schemas.units import SeedDocument
from referrals.config import Settings
from referrals.domain.routing import Facts, RuleSet, decide
from referrals.runtime import Runtime
from referrals.services import routing, seeding
from tests.ops.cli import invoke, run

DISTRICTS = (
    "bromma",
    "enskede-arsta-vantor",
    "farsta",
    "hagersten-alvsjo",
    "hasselby-vallingby",
    "kungsholmen",
    "norrmalm",
    "ostermalm",
    "rinkeby-kista",
    "skarpnack",
    "skarholmen",
    "spanga-tensta",
    "sodermalm",
)

# An own seed file changes the routing: recorded in the audit trail with a reason.
REASON = ("--reason", "test-seed")


@dataclass(frozen=True)
class Stored:
    units: dict[str, dict[str, Any]]
    ruleset: RuleSet | None

    def route(self, district: str | None) -> str:
        assert self.ruleset is not None
        facts = Facts(district=district, age=15, categories=frozenset({"other"}), priority="normal")
        return decide(self.ruleset, facts).unit


@pytest.fixture
def stored(instance: Path) -> Iterator[Any]:
    """``stored()`` -> the units and the current rule set as the app sees them now."""
    apps: list[Flask] = []

    def read() -> Stored:
        app = create_app(Settings(instance_path=instance))
        apps.append(app)
        runtime: Runtime = app.extensions["referrals"]
        with runtime.unit_of_work() as uow:
            units = {
                u.id: {
                    "kind": u.kind,
                    "districts": list(u.districts),
                    "webhook_url": u.webhook_url,
                    "webhook_enabled": u.webhook_enabled,
                    "webhook_secret": u.webhook_secret,
                }
                for u in uow.units.all()
            }
            return Stored(units, routing.current(uow))

    yield read
    for app in apps:
        app.extensions["referrals"].database.dispose()


# --- stockholm -----------------------------------------------------------------------------


def test_stockholm_seed_routes_every_district_to_its_own_office(
    env: dict[str, str], stored: Any
) -> None:
    run(env, "db", "upgrade")

    output = run(env, "seed", "stockholm")

    assert output.splitlines() == [
        "15 units created",
        "routing rules installed as rule-set version 1",
    ]
    seeded = stored()
    receivers = {i for i, u in seeded.units.items() if u["kind"] == "receiver"}
    referrers = {i for i, u in seeded.units.items() if u["kind"] == "referrer"}
    assert receivers == {*DISTRICTS, "intake"}
    assert referrers == {"ungdomsjouren"}
    assert len(seeded.units) == 15
    for district in DISTRICTS:
        assert seeded.units[district]["districts"] == [district]
        assert seeded.route(district) == district, district
    assert seeded.units["intake"]["districts"] == []
    # Anything not served by a district office goes to central intake.
    for elsewhere in ("solna", "nacka", None):
        assert seeded.route(elsewhere) == "intake"
    assert seeded.ruleset is not None
    assert seeded.ruleset.version == 1
    assert seeded.ruleset.rules[-1].unit == "intake"
    assert seeded.ruleset.rules[-1].match.districts is None


def test_stockholm_webhooks_are_made_up_and_disabled(env: dict[str, str], stored: Any) -> None:
    run(env, "db", "upgrade")
    run(env, "seed", "stockholm")

    units = stored().units

    with_url = {i: u for i, u in units.items() if u["webhook_url"]}
    assert set(with_url) == set(DISTRICTS)
    for unit_id, unit in with_url.items():
        host = urlsplit(unit["webhook_url"]).hostname
        assert host is not None
        assert host.endswith(".invalid"), unit_id  # RFC 6761: can never resolve
    for unit_id, unit in units.items():
        assert unit["webhook_enabled"] is False, unit_id
        assert unit["webhook_secret"] is None, unit_id


def test_seeding_stockholm_again_changes_nothing(env: dict[str, str], stored: Any) -> None:
    run(env, "db", "upgrade")
    run(env, "seed", "stockholm")
    first = stored()

    output = run(env, "seed", "stockholm")

    assert output.splitlines() == ["0 units created", "routing rules unchanged"]
    again = stored()
    assert again.units == first.units
    assert again.ruleset == first.ruleset


# --- an organisation's own file ------------------------------------------------------------


def own_document() -> dict[str, Any]:
    return {
        "_comment": "A made-up municipality next door.",
        "units": [
            {"id": "faltgruppen", "name": "Fältgruppen", "kind": "referrer"},
            {
                "id": "solna-socialtjanst",
                "name": "Solna socialtjänst",
                "kind": "receiver",
                "districts": ["solna"],
                "webhook_url": "https://solna.webhooks.example.invalid/in",
            },
        ],
        "rules": [
            {"position": 10, "unit": "solna-socialtjanst", "match": {"districts": ["solna"]}},
            {"position": 1000, "unit": "intake", "match": {}},
        ],
    }


def write(tmp_path: Path, document: Any, name: str = "seed.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), "utf-8")
    return str(path)


def test_own_seed_file_adds_its_units_and_installs_its_rules_as_a_new_version(
    env: dict[str, str], stored: Any, tmp_path: Path
) -> None:
    run(env, "db", "upgrade")
    run(env, "seed", "stockholm")

    output = run(env, "seed", "file", write(tmp_path, own_document()), *REASON)

    assert output.splitlines() == [
        "2 units created",
        "routing rules installed as rule-set version 2",
    ]
    seeded = stored()
    assert len(seeded.units) == 17
    assert seeded.units["faltgruppen"]["kind"] == "referrer"
    assert seeded.units["solna-socialtjanst"]["districts"] == ["solna"]
    # A seeded endpoint has no secret yet, so it cannot be enabled by the seed itself.
    assert seeded.units["solna-socialtjanst"]["webhook_enabled"] is False
    assert seeded.ruleset is not None
    assert seeded.ruleset.version == 2
    assert seeded.route("solna") == "solna-socialtjanst"
    # The new rule set replaces the old one whole: Norrmalm now goes to intake.
    assert seeded.route("norrmalm") == "intake"

    again = run(env, "seed", "file", write(tmp_path, own_document()), *REASON)
    assert again.splitlines() == ["0 units created", "routing rules unchanged"]


def with_bad_rule(document: dict[str, Any]) -> dict[str, Any]:
    document["rules"][0]["unit"] = "no-such-office"
    return document


def without_catch_all(document: dict[str, Any]) -> dict[str, Any]:
    document["rules"] = document["rules"][:1]
    return document


def with_unknown_unit_key(document: dict[str, Any]) -> dict[str, Any]:
    document["units"][1]["colour"] = "red"
    return document


def with_unknown_top_level_key(document: dict[str, Any]) -> dict[str, Any]:
    document["rulez"] = document.pop("rules")
    return document


def routing_to_a_referrer(document: dict[str, Any]) -> dict[str, Any]:
    document["rules"][0]["unit"] = "faltgruppen"
    return document


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (with_bad_rule, "names 'no-such-office', which is not a receiving unit (unit)"),
        (routing_to_a_referrer, "names 'faltgruppen', which is not a receiving unit (unit)"),
        (without_catch_all, "catch-all"),
        (with_unknown_unit_key, "colour"),
        (with_unknown_top_level_key, "rulez"),
        ('{"units": [', "is not a JSON document"),
        ("[1, 2]", "invalid seed document"),
    ],
    ids=[
        "unknown-unit-in-rule",
        "rule-to-a-referrer",
        "no-catch-all",
        "unknown-unit-key",
        "unknown-key",
        "malformed-json",
        "not-an-object",
    ],
)
def test_an_invalid_seed_file_fails_clearly_and_changes_nothing(
    env: dict[str, str], stored: Any, tmp_path: Path, broken: Any, message: str
) -> None:
    run(env, "db", "upgrade")
    run(env, "seed", "stockholm")
    before = stored()
    document = broken(own_document()) if callable(broken) else broken

    result = invoke(env, "seed", "file", write(tmp_path, document), *REASON)

    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    after = stored()
    # Not even the units the document would have added (they come in one transaction).
    assert after.units == before.units
    assert after.ruleset == before.ruleset


def test_a_seed_file_that_does_not_exist_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "db", "upgrade")
    result = invoke(env, "seed", "file", str(tmp_path / "missing.json"), *REASON)
    assert result.exit_code != 0
    assert "does not exist" in result.output


# --- the packaged documents ----------------------------------------------------------------


def packaged_names() -> list[str]:
    folder = resources.files("referrals.seeds")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def test_every_packaged_seed_is_listed() -> None:
    assert set(packaged_names()) == set(seeding.PACKAGED)


@pytest.mark.parametrize("name", seeding.PACKAGED)
def test_packaged_seed_documents_validate(name: str) -> None:
    document = SeedDocument().load(seeding.packaged(name))
    ids = [unit["id"] for unit in document["units"]]
    assert len(ids) == len(set(ids))
    receivers = {u["id"] for u in document["units"] if u["kind"] == "receiver"}
    assert {rule["unit"] for rule in document["rules"]} <= receivers
    assert document["rules"][-1]["match"] == {}
