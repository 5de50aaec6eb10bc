"""Revision 0008 (two-phase disclosure): referrals accepted before it stay disclosed to
the unit that accepted them; nothing else is marked disclosed.  On both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    Uuid,
    column,
    create_engine,
    insert,
    select,
    table,
)

from referrals.db.base import UTCDateTime
from referrals.db.migrate import upgrade
from tests.support.databases import empty_postgres_database

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
UNITS = table(
    "units",
    column("id", String()),
    column("name", String()),
    column("kind", String()),
    column("districts", JSON()),
    column("webhook_enabled", Boolean()),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)
REFERRALS = table(
    "referrals",
    column("id", Uuid()),
    column("version", Integer()),
    column("status", String()),
    column("sending_unit_id", String()),
    column("receiving_unit_id", String()),
    column("created_by", String()),
    column("priority", String()),
    column("categories", JSON()),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)
EVENTS = table(
    "timeline_events",
    column("id", Uuid()),
    column("referral_id", Uuid()),
    column("position", Integer()),
    column("at", UTCDateTime()),
    column("action", String()),
    column("actor", String()),
    column("actor_unit", String()),
    column("to_status", String()),
)
DISCLOSED = table("referrals", column("id", Uuid()), column("identity_disclosed_to", String()))


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'before-0008.sqlite3'}"
    else:
        with empty_postgres_database() as url:
            yield url


def test_0008_marks_referrals_accepted_before_it_as_disclosed_to_their_unit(
    blank_url: str,
) -> None:
    upgrade(blank_url, "0007")
    # (status, receiving unit, the units whose caseworkers accepted it)
    cases = {
        "in_progress": ("in_progress", "norrmalm", ["norrmalm"]),
        "cancelled_after_accept": ("cancelled", "norrmalm", ["norrmalm"]),
        "requested": ("requested", "norrmalm", []),
        "declined": ("rejected", "norrmalm", []),
        "redirected_after_accept_elsewhere": ("requested", "sodermalm", ["norrmalm"]),
    }
    ids = {name: uuid.uuid4() for name in cases}
    engine = create_engine(blank_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(UNITS),
                [
                    {"id": u, "name": u, "kind": k, "districts": [], "webhook_enabled": False,
                     "created_at": NOW, "updated_at": NOW}
                    for u, k in (("outreach", "referrer"), ("norrmalm", "receiver"),
                                 ("sodermalm", "receiver"))
                ],
            )  # fmt: skip
            for name, (status, unit, accepted_by) in cases.items():
                connection.execute(
                    insert(REFERRALS),
                    {"id": ids[name], "version": 1, "status": status,
                     "sending_unit_id": "outreach", "receiving_unit_id": unit,
                     "created_by": "someone", "priority": "normal", "categories": [],
                     "created_at": NOW, "updated_at": NOW},
                )  # fmt: skip
                for position, by in enumerate(accepted_by, start=1):
                    connection.execute(
                        insert(EVENTS),
                        {"id": uuid.uuid4(), "referral_id": ids[name], "position": position,
                         "at": NOW, "action": "accept", "actor": "cw", "actor_unit": by,
                         "to_status": "accepted"},
                    )  # fmt: skip
        upgrade(blank_url, "head")
        with engine.connect() as connection:
            disclosed = dict(
                connection.execute(select(DISCLOSED.c.id, DISCLOSED.c.identity_disclosed_to)).all()
            )
    finally:
        engine.dispose()
    assert {name: disclosed[ids[name]] for name in cases} == {
        "in_progress": "norrmalm",
        "cancelled_after_accept": "norrmalm",
        "requested": None,
        "declined": None,
        # Accepted by another unit than the one holding it now: nothing for the holder.
        "redirected_after_accept_elsewhere": None,
    }
