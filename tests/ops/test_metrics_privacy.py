"""No label ever holds personal data or a referral id.

Five referrals are driven through their lifecycle with a canary in every sensitive field
(tests/crypto/canary.py), every route the app has is requested (with the canaries and the
referral ids in paths, query strings and headers wherever a route takes any text), and
the whole exposition is then scanned for every encoding of every canary and for the ids.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from referrals.config import Settings
from tests.api.helpers import Actors, bearer
from tests.crypto.canary import find, populate, read_back
from tests.support.metrics import TOKEN, samples, scrape

CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path, metrics_token=TOKEN)


def concrete(rule: str, values: dict[str, str]) -> str:
    """The rule with each converter replaced by a value of its kind."""

    def fill(match: re.Match[str]) -> str:
        converter = match.group(1) or "default"
        if converter == "uuid":
            return values["uuid"]
        if converter == "slug":
            return "norrmalm"
        return values["text"]

    return CONVERTER.sub(fill, rule)


def test_the_exposition_holds_no_canary_and_no_referral_id(
    app: Flask, client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    actors = Actors(dev_token)
    scenario = populate(client, actors)
    read_back(client, actors, scenario)
    canaries = scenario.canaries
    name = next(v for label, v in canaries.values.items() if "subject name" in label)
    number = next(v for label, v in canaries.values.items() if "personal number" in label)
    ids = list(scenario.ids.values())
    tokens = [
        actors.worker,
        actors.norrmalm,
        bearer(dev_token("auditor")),
        bearer(dev_token("admin")),
    ]

    requested: set[str] = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == "/metrics":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for referral_id in ids[:2]:
                for text in (quote(name), number):
                    path = concrete(rule.rule, {"uuid": referral_id, "text": text})
                    for headers in tokens:
                        client.open(
                            path,
                            method=method,
                            query_string={"q": number, "subject": name, "cursor": referral_id},
                            headers={**headers, "X-Request-ID": f"{number}-{referral_id}"},
                            json={"personal_number": number, "name": name},
                        )
            requested.add(rule.rule)
    # Paths that match no rule, full of personal data and ids.
    client.get(f"/api/v1/referrals/{quote(name)}")
    client.get(f"/{number}/{ids[0]}")
    client.open(f"/api/v1/referrals/{ids[0]}", method="BREW")

    text = scrape(client)
    assert find(text.encode(), canaries.needles) == []
    for referral_id in ids:
        for form in (referral_id, uuid.UUID(referral_id).hex, referral_id.upper()):
            assert form not in text

    # Every route template was counted, and only templates are.
    routes = {s.labels["route"] for s in samples(text) if "route" in s.labels}
    templates = {rule.rule for rule in app.url_map.iter_rules()}
    assert routes <= templates | {"(no route)"}
    assert requested <= routes
