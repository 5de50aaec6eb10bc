"""Every referral whose personal data leaves the service appears in its access log.

The review's finding: ``GET /referrals`` (up to 200 items), ``POST /referrals/search`` and the
``possible_duplicates`` of a submit returned referrals under one event with no target, so
"who looked at this case" did not show a caseworker who read it in a list or found it by
search.  Each request still writes one audit event; the event names every referral it
disclosed, and the sealed hash covers those names.  A refused call names nothing.
Both databases; the web pages call the same use cases and are held to the same rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, delete, text
from sqlalchemy.exc import DBAPIError

from referrals.audit import disclosures, sealing
from referrals.db.models import AuditEventTarget
from referrals.runtime import Runtime, audit_public_keys
from tests.api.helpers import REFERRALS, Actors, act, bearer, create, personal_number
from tests.web.helpers import APP, AUDITOR, MINE, NORRMALM, post, sign_in
from tests.web.helpers import text as page_text

NUMBER = personal_number(2011, 5, 17, "215")


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


@pytest.fixture
def auditor(dev_token: Any) -> dict[str, str]:
    return bearer(dev_token("auditor"))


def submitted(client: FlaskClient, actors: Actors) -> str:
    body = create(client, actors.worker, subject={"personal_number": NUMBER}, submit=True)
    assert body["receiving_unit"] == "norrmalm"
    referral_id = body["id"]
    assert isinstance(referral_id, str)
    return referral_id


def accepted(client: FlaskClient, actors: Actors) -> str:
    """Submitted and accepted: disclosed to norrmalm, so its search finds it (two-phase)."""
    referral_id = submitted(client, actors)
    done = client.post(f"{REFERRALS}/{referral_id}/accept", json={}, headers=actors.norrmalm)
    assert done.status_code == 200, done.get_json()
    return referral_id


def access_log(
    client: FlaskClient, auditor: Mapping[str, str], referral_id: str
) -> list[dict[str, Any]]:
    response = client.get(f"{REFERRALS}/{referral_id}/access-log", headers=dict(auditor))
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert isinstance(items, list)
    return items


def entries(log: list[dict[str, Any]], action: str) -> list[tuple[str, str]]:
    return [(e["actor"]["subject"], e["outcome"]) for e in log if e["action"] == action]


def test_a_listing_puts_every_listed_referral_in_its_access_log(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    first, second = submitted(client, actors), submitted(client, actors)
    listed = client.get(REFERRALS, headers=actors.norrmalm)
    assert {item["id"] for item in listed.get_json()["items"]} >= {first, second}
    for referral_id in (first, second):
        assert entries(access_log(client, auditor, referral_id), "referral:list") == [
            ("dev-caseworker@norrmalm", "allowed")
        ]


def test_a_search_puts_every_match_in_its_access_log(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    referral_id = accepted(client, actors)
    found = client.post(
        f"{REFERRALS}/search", json={"personal_number": NUMBER}, headers=actors.norrmalm
    )
    assert [item["id"] for item in found.get_json()["items"]] == [referral_id]
    assert entries(access_log(client, auditor, referral_id), "referral:search") == [
        ("dev-caseworker@norrmalm", "allowed")
    ]


def test_a_duplicate_warning_puts_the_earlier_referral_in_its_access_log(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    earlier = submitted(client, actors)
    later = create(client, actors.worker, subject={"personal_number": NUMBER}, submit=True)
    assert [d["id"] for d in later["possible_duplicates"]] == [earlier]
    creates = [e for e in access_log(client, auditor, earlier) if e["action"] == "referral:create"]
    # Its own creation, and the later submit that named it as a possible duplicate.
    # (The test clock stands still: both events carry the same time, so no order.)
    assert sorted((e["target_id"], e["outcome"]) for e in creates) == sorted(
        [(earlier, "allowed"), (later["id"], "allowed")]
    )


def test_refused_calls_name_nothing(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    referral_id = submitted(client, actors)
    assert client.get(REFERRALS, headers=auditor).status_code == 403
    refused = client.post(f"{REFERRALS}/search", json={"personal_number": NUMBER}, headers=auditor)
    assert refused.status_code == 403
    # Outside the caller's scope: another unit's list and search do not name it either.
    assert client.get(REFERRALS, headers=actors.sodermalm).status_code == 200
    other = client.post(
        f"{REFERRALS}/search", json={"personal_number": NUMBER}, headers=actors.sodermalm
    )
    assert other.get_json()["items"] == []
    log = access_log(client, auditor, referral_id)
    assert {e["action"] for e in log} == {"referral:create"}


def test_the_names_are_sealed_with_the_event(
    client: FlaskClient,
    actors: Actors,
    auditor: dict[str, str],
    db_connection: Connection,
) -> None:
    """Taking a referral out of an event's list after sealing breaks the chain there."""
    referral_id = submitted(client, actors)
    client.get(REFERRALS, headers=actors.norrmalm)
    runtime: Runtime = client.application.extensions["referrals"]
    with runtime.database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    (listed,) = entries(access_log(client, auditor, referral_id), "referral:list")
    assert listed == ("dev-caseworker@norrmalm", "allowed")
    with runtime.database.sessions() as session:
        assert sealing.verify(session, audit_public_keys(runtime)).ok
    # The owner's view of the table (the append-only trigger is the owner's to lift).
    if db_connection.dialect.name == "postgresql":
        db_connection.execute(text("ALTER TABLE audit_event_targets DISABLE TRIGGER USER"))
    db_connection.execute(
        delete(AuditEventTarget).where(AuditEventTarget.referral_id == uuid.UUID(referral_id))
    )
    assert entries(access_log(client, auditor, referral_id), "referral:list") == []
    with runtime.database.sessions() as session:
        result = sealing.verify(session, audit_public_keys(runtime))
    assert result.finding is not None
    assert result.finding.problem == "altered"


def test_the_web_pages_that_list_referrals_log_each_one(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    referral_id = submitted(client, actors)
    web = client.application.test_client()
    sign_in(web)
    assert referral_id in page_text(web.get(MINE))
    log = access_log(client, auditor, referral_id)
    assert entries(log, "referral:list") == [("dev-youth_worker@ungdomsjouren", "allowed")]
    reviewer = client.application.test_client()
    sign_in(reviewer, AUDITOR)
    page = page_text(reviewer.get(f"{APP}/audit/referrals/{referral_id}"))
    assert "<code>referral:list</code>" in page


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event_targets SET referral_id = event_id",
        "DELETE FROM audit_event_targets",
        "TRUNCATE audit_event_targets",
    ],
)
def test_the_names_are_append_only_on_postgresql(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    statement: str,
) -> None:
    submitted(client, actors)
    client.get(REFERRALS, headers=actors.norrmalm)
    count = text("SELECT count(*) FROM audit_event_targets")
    assert db_connection.execute(count).scalar_one() == 1
    savepoint = db_connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db_connection.execute(text(statement))
    savepoint.rollback()
    assert db_connection.execute(count).scalar_one() == 1


def test_the_web_search_logs_each_match(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    referral_id = accepted(client, actors)
    web = client.application.test_client()
    sign_in(web, NORRMALM)
    found = post(web, f"{APP}/referrals/search", {"personal_number": NUMBER})
    assert found.status_code == 200
    assert entries(access_log(client, auditor, referral_id), "referral:search") == [
        ("dev-caseworker@norrmalm", "allowed")
    ]


def test_submitting_a_draft_names_its_possible_duplicates(
    client: FlaskClient, actors: Actors, auditor: dict[str, str]
) -> None:
    earlier = submitted(client, actors)
    draft = create(client, actors.worker, subject={"personal_number": NUMBER})
    response = act(client, draft["id"], "submit", actors.worker)
    assert response.status_code == 200, response.get_json()
    assert [d["id"] for d in response.get_json()["possible_duplicates"]] == [earlier]
    submits = entries(access_log(client, auditor, earlier), "referral:submit")
    assert submits == [("dev-youth_worker@ungdomsjouren", "allowed")]


def test_the_verifiers_range_lookup_finds_what_the_id_lookup_finds(
    client: FlaskClient, actors: Actors
) -> None:
    """``of_sealed`` (by a range of seal numbers, the verifier's) gives ``of_events``' names
    for the events sealed in that range, and nothing for events outside it."""
    submitted(client, actors)
    submitted(client, actors)
    client.get(REFERRALS, headers=actors.norrmalm)
    client.get(REFERRALS, headers=actors.worker)
    runtime: Runtime = client.application.extensions["referrals"]
    with runtime.database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
        seals = session.execute(text("SELECT seq, event_id FROM audit_seals ORDER BY seq")).all()
        by_seq = {seq: uuid.UUID(str(event_id)) for seq, event_id in seals}
        everything = disclosures.of_events(session, list(by_seq.values()))
        assert sum(len(names) for names in everything.values()) >= 4
        last = max(by_seq)
        for first, upto in [(1, last), (2, last - 1), (last, last), (last + 1, last + 5)]:
            inside = [by_seq[s] for s in by_seq if first <= s <= upto]
            expected = {k: sorted(v) for k, v in everything.items() if k in inside}
            found = disclosures.of_sealed(session, first, upto)
            assert {k: sorted(v) for k, v in found.items()} == expected
