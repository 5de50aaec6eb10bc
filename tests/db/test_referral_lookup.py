"""``ReferralRepository.get``: the referral by id, as ``session.get`` finds it.

The repository sends a SELECT built once instead of ``session.get``'s SELECT built anew
per call (tests/benchmarks: about a tenth of a read's CPU).  It must find exactly what
``session.get`` finds: the same row with every column, nothing for an unknown id or a
row deleted in this transaction, and, for a referral the session already holds, that
very object without a query.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import inspect

from referrals.db.engine import Database
from referrals.db.models import Referral
from referrals.db.repositories import ReferralRepository
from tests.api.helpers import Actors, create
from tests.support.statements import sent_statements


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def columns(row: Referral) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(Referral).column_attrs}


def test_it_finds_what_session_get_finds(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = uuid.UUID(create(client, actors.worker, submit=True)["id"])
    with database.sessions() as session:
        expected = columns(session.get(Referral, rid))
    with database.sessions() as session:
        found = ReferralRepository(session).get(rid)
        assert found is not None
        assert columns(found) == expected
        assert ReferralRepository(session).get(uuid.uuid4()) is None


def test_a_referral_the_session_holds_costs_no_query(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = uuid.UUID(create(client, actors.worker, submit=True)["id"])
    with database.sessions() as session:
        referrals = ReferralRepository(session)
        with sent_statements(database.engine) as sent:
            first = referrals.get(rid)
            again = referrals.get(rid)
        assert first is not None
        assert again is first
        assert len([s for s in sent if "FROM referrals" in s]) == 1


def test_a_referral_deleted_in_this_transaction_is_not_found(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = uuid.UUID(create(client, actors.worker)["id"])  # a draft: it may be deleted
    with database.sessions() as session:
        referrals = ReferralRepository(session)
        row = referrals.get(rid)
        assert row is not None
        referrals.delete(row)
        assert referrals.get(rid) is None
        assert session.get(Referral, rid) is None


def test_an_expired_referral_is_read_again(
    client: FlaskClient, actors: Actors, database: Database
) -> None:
    rid = uuid.UUID(create(client, actors.worker)["id"])
    with database.sessions() as session:
        referrals = ReferralRepository(session)
        row = referrals.get(rid)
        assert row is not None
        session.execute(
            Referral.__table__.update()
            .where(Referral.__table__.c.id == rid)
            .values(priority="acute")
        )
        session.expire(row)
        again = referrals.get(rid)
        assert again is row
        assert again.priority == "acute"
