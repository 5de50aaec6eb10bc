"""Consent that can be withdrawn (issue 12, item 7), on SQLite and PostgreSQL.

``POST /referrals/{id}/withdraw-consent {"reason_code": ...}``: the sender records that
the consent a referral rests on was withdrawn.  An open referral is closed (cancelled,
``consent_withdrawn``), a closed one keeps its status; the timeline shows it, the
receiving unit is told (the webhook itself: tests/webhooks/test_disclosure_webhooks.py)
and sees only the decision view from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from referrals.db.engine import Database
from referrals.db.models import AuditEvent, OutboxMessage
from tests.api.helpers import (
    ACTION_NOT_ALLOWED,
    CONFLICT,
    REFERRALS,
    VALIDATION,
    Actors,
    act,
    assert_problem,
    create,
    events,
)

CONSENT = {"given_by": "subject", "given_at": "2026-11-30T18:00:00+01:00"}


def consented(client: FlaskClient, actors: Actors, *, submit: bool = True) -> str:
    view = create(client, actors.worker, legal_basis="consent", consent=CONSENT, submit=submit)
    return str(view["id"])


def withdraw(
    client: FlaskClient,
    rid: str,
    headers: Mapping[str, str],
    reason: Any = "withdrawn_by_subject",
) -> TestResponse:
    return client.post(
        f"{REFERRALS}/{rid}/withdraw-consent", json={"reason_code": reason}, headers=dict(headers)
    )


def outbox(database: Database, rid: str) -> list[tuple[str, str]]:
    with database.sessions() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()
    return [(m.event_type, m.unit_id) for m in rows if str(m.referral_id) == rid]


def test_withdrawing_consent_closes_an_open_referral_and_tells_the_receiving_unit(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = consented(client, actors)

    response = withdraw(client, rid, actors.worker)

    assert response.status_code == 200, response.get_json()
    view = response.get_json()
    assert (view["status"], view["reason_code"], view["open"]) == (
        "cancelled",
        "consent_withdrawn",
        False,
    )
    assert view["consent"]["withdrawn_at"]
    assert view["consent"]["given_by"] == "subject"
    for headers in (actors.worker, actors.norrmalm):
        (event,) = [e for e in events(client, rid, headers) if e["action"] == "withdraw_consent"]
        assert (event["from_status"], event["to_status"], event["reason_code"]) == (
            "requested",
            "cancelled",
            "withdrawn_by_subject",
        )
        assert event["actor_unit"] == "ungdomsjouren"
    assert ("referral.consent_withdrawn", "norrmalm") in outbox(database, rid)
    assert ("referral.consent_withdrawn", "ungdomsjouren") not in outbox(database, rid)
    with database.sessions() as session:
        trail = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "referral:withdraw-consent")
        ).all()
    assert [(e.target_id, e.outcome) for e in trail] == [(rid, "allowed")]


def test_after_a_withdrawal_the_receiving_unit_no_longer_sees_the_identity(
    client: FlaskClient, actors: Actors
) -> None:
    rid = consented(client, actors)
    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    assert act(client, rid, "start", actors.norrmalm).status_code == 200
    before = client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm).get_json()
    assert before["disclosure"] == "full"
    assert before["subject"]["name"] == "Kim Exempelsson"

    assert withdraw(client, rid, actors.worker, "withdrawn_by_guardian").status_code == 200

    after = client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm)
    assert after.status_code == 200
    assert after.get_json()["disclosure"] == "decision"
    assert after.get_json()["status"] == "cancelled"
    assert "Kim Exempelsson" not in after.get_data(as_text=True)
    # The sender keeps its own record.
    mine = client.get(f"{REFERRALS}/{rid}", headers=actors.worker).get_json()
    assert mine["subject"]["name"] == "Kim Exempelsson"


def test_a_closed_referral_keeps_its_status_and_records_the_withdrawal(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = consented(client, actors)
    assert act(client, rid, "accept", actors.norrmalm).status_code == 200
    completed = act(client, rid, "complete", actors.norrmalm, {"outcome_code": "support_started"})
    assert completed.status_code == 200

    response = withdraw(client, rid, actors.worker)

    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["status"], response.get_json()["outcome_code"]) == (
        "completed",
        "support_started",
    )
    assert response.get_json()["consent"]["withdrawn_at"]
    assert ("referral.consent_withdrawn", "norrmalm") in outbox(database, rid)


def test_only_a_submitted_referral_resting_on_consent_is_withdrawn_once(
    client: FlaskClient, actors: Actors
) -> None:
    draft = consented(client, actors, submit=False)
    assert_problem(withdraw(client, draft, actors.worker), 409, CONFLICT, field="status")

    other_basis = create(client, actors.worker, submit=True)["id"]
    assert_problem(withdraw(client, other_basis, actors.worker), 409, CONFLICT, field="legal_basis")

    rid = consented(client, actors)
    assert withdraw(client, rid, actors.worker).status_code == 200
    assert_problem(withdraw(client, rid, actors.worker), 409, CONFLICT, field="reason_code")


def test_only_the_sender_withdraws_consent(client: FlaskClient, actors: Actors) -> None:
    rid = consented(client, actors)
    assert_problem(withdraw(client, rid, actors.norrmalm), 403, ACTION_NOT_ALLOWED)
    assert withdraw(client, rid, actors.sodermalm).status_code == 404
    status = client.get(f"{REFERRALS}/{rid}", headers=actors.worker).get_json()["status"]
    assert status == "requested"


@pytest.mark.parametrize(
    "body",
    [{}, {"reason_code": "changed_mind"}, {"reason_code": None}, {"reason_code": 1}],
)
def test_a_withdrawal_needs_a_known_reason_code(
    client: FlaskClient, actors: Actors, body: dict[str, Any]
) -> None:
    rid = consented(client, actors)
    response = client.post(f"{REFERRALS}/{rid}/withdraw-consent", json=body, headers=actors.worker)
    assert_problem(response, 422, VALIDATION, field="reason_code")
