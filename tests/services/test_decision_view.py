"""``records.represent`` shows no personal field in a decision view, whatever it is given.

The use cases do not even open the fields for a decision view; this is the second line:
a future caller that passes opened fields by mistake still shows none of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from referrals.db.models import Referral
from referrals.domain.codes import Disclosure, Side
from referrals.services import records

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PLAIN = {
    "subject_name": "Påhittad Person",
    "personal_number": "201006022386",
    "birth_date": "2010-06-02",
    "phone": "070-000 00 01",
    "guardian_name": "Påhittad Förälder",
    "guardian_phone": "070-000 00 02",
    "narrative": "Påhittad berättelse",
    "place_met": "Påhittad plats",
}


def row() -> Referral:
    return Referral(
        id=uuid.uuid4(),
        version=1,
        status="requested",
        sending_unit_id="ungdomsjouren",
        receiving_unit_id="norrmalm",
        created_by="someone",
        priority="urgent",
        categories=["drugs"],
        legal_basis="duty_to_report",
        district="norrmalm",
        age_at_submission=16,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_decision_view_shows_no_personal_field_even_when_given_them() -> None:
    view = records.represent(
        row(), Side.RECEIVER, dict(PLAIN), now=NOW, disclosure=Disclosure.DECISION
    )
    text = repr(view)
    assert [v for v in PLAIN.values() if v in text] == []
    assert view["subject"] == {"district": "norrmalm", "age": 16}
    assert view["disclosure"] == "decision"


def test_a_full_view_shows_them() -> None:
    view = records.represent(row(), Side.RECEIVER, dict(PLAIN), now=NOW)
    assert view["subject"]["name"] == PLAIN["subject_name"]
    assert view["narrative"] == PLAIN["narrative"]
    assert view["disclosure"] == "full"
