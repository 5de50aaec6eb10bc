"""Webhooks under two-phase disclosure and consent withdrawal, over a real loopback socket.

A webhook tells a unit's system that something changed and carries ids and codes only;
the receiving system then reads the referral through the API as itself, and so gets the
decision view until it accepts.  The attack: a receiving unit's system learns the
identity of a requested referral from what is pushed to it, or from following it up.
Runs on SQLite and PostgreSQL; verified with the independent verifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask.testing import FlaskClient

from referrals.worker import Worker
from tests.api.helpers import NORRMALM, REFERRALS, REFERRER, Actors, act
from tests.support.clock import FakeClock
from tests.support.standard_webhooks import verify
from tests.support.webhook_receiver import WebhookReceiver

NAME, NUMBER = "Webbkrok Påhittadsson", "201006022386"
NARRATIVE = "Berättelse som bara mottagaren får se efter beslut"
BODY = {
    "subject": {"name": NAME, "personal_number": NUMBER, "district": NORRMALM},
    "guardian": {"name": "Förmyndare Påhittad"},
    "categories": ["violence"],
    "priority": "urgent",
    "legal_basis": "consent",
    "consent": {"given_by": "subject", "given_at": "2026-11-30T18:00:00+01:00"},
    "place_met": "Påhittade gatan",
    "narrative": NARRATIVE,
    "submit": True,
}
SECRETS = (NAME, NUMBER, NUMBER[2:], "Förmyndare", "Påhittade gatan", NARRATIVE)


def no_secrets(raw: bytes) -> bool:
    text = json.dumps(json.loads(raw), ensure_ascii=False)
    return not [s for s in SECRETS if s in text]


def test_a_receiving_system_learns_no_identity_from_webhooks_or_following_them_up(
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secret = set_webhook(NORRMALM, receiver.url("/norrmalm"))
    set_webhook(REFERRER, receiver.url("/ungdomsjouren"))
    created = client.post(REFERRALS, json=BODY, headers=actors.worker)
    assert created.status_code == 201, created.get_json()
    rid = created.get_json()["id"]

    worker.run_round()
    (pushed,) = receiver.wait_for(1)
    payload = verify(secret, pushed.headers, pushed.body, now=clock.now.timestamp())
    assert payload["type"] == "referral.submitted"
    assert no_secrets(pushed.body)
    # Following the webhook up, as the receiving unit's system does: the decision view.
    followed = client.get(f"{REFERRALS}/{payload['data']['referral_id']}", headers=actors.norrmalm)
    assert followed.status_code == 200
    assert followed.get_json()["disclosure"] == "decision"
    assert no_secrets(followed.get_data())

    # After accepting, following up discloses; the webhook to the sender still carries none.
    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    worker.run_round()
    accepted = [r for r in receiver.wait_for(2) if r.path == "/ungdomsjouren"]
    assert json.loads(accepted[0].body)["type"] == "referral.accepted"
    assert no_secrets(accepted[0].body)
    full = client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm).get_data(as_text=True)
    assert NAME in json.dumps(json.loads(full), ensure_ascii=False)


def test_a_withdrawal_of_consent_is_pushed_to_the_receiving_unit(
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    clock: FakeClock,
) -> None:
    secret = set_webhook(NORRMALM, receiver.url("/norrmalm"))
    set_webhook(REFERRER, receiver.url("/ungdomsjouren"))
    rid = client.post(REFERRALS, json=BODY, headers=actors.worker).get_json()["id"]
    worker.run_round()
    receiver.wait_for(1)
    receiver.clear()
    clock.advance(minutes=5)

    withdrawn = client.post(
        f"{REFERRALS}/{rid}/withdraw-consent",
        json={"reason_code": "withdrawn_by_subject"},
        headers=actors.worker,
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    worker.run_round()

    (pushed,) = receiver.wait_for(1)
    assert pushed.path == "/norrmalm"  # the sender acted: only the receiver is told
    payload = verify(secret, pushed.headers, pushed.body, now=clock.now.timestamp())
    assert payload["type"] == "referral.consent_withdrawn"
    assert payload["data"] == {"referral_id": rid, "status": "cancelled"}
    assert no_secrets(pushed.body)
