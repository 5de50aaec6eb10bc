"""What receivers are promised in the committed spec (OpenAPI 3.1 ``webhooks``) is what
they get: every body a real receiver saw validates against it, headers included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker

from referrals.worker import Worker
from tests.api.helpers import Actors, act, bearer, create
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import WebhookReceiver

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def promised() -> dict[str, Any]:
    webhook = json.loads(SPEC.read_text("utf-8"))["webhooks"]["referralEvent"]["post"]
    assert isinstance(webhook, dict)
    return webhook


def test_every_delivered_body_and_header_is_as_the_spec_promises(
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    dev_token: Callable[..., str],
    clock: FakeClock,
) -> None:
    set_webhook("norrmalm", receiver.url("/norrmalm"))
    set_webhook("ungdomsjouren", receiver.url("/ungdomsjouren"))
    caseworker = bearer(dev_token("caseworker", "norrmalm"))
    declined = create(client, actors.worker, submit=True, priority="urgent")["id"]
    assert (
        act(client, declined, "decline", caseworker, {"reason_code": "no_capacity"}).status_code
        == 200
    )
    create(client, actors.worker, submit=True, priority="acute")
    clock.advance(days=1)  # the acute one is overdue now
    while worker.run_round().claimed:
        pass

    webhook = promised()
    schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    seen = set()
    for request in receiver.received:
        body = json.loads(request.body)
        assert list(validator.iter_errors(body)) == []
        assert headers <= set(request.headers)
        seen.add(body["type"])
    assert seen == {
        "referral.submitted",
        "referral.declined",
        "referral.overdue",
        "referral.unanswered",
    }
