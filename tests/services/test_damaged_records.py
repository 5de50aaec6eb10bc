"""One damaged referral must not take a caseworker's whole inbox down, nor leak."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import Connection, text

NUMBERS = ("201003142385", "201104052392")


def body(name: str, number: str) -> dict[str, object]:
    return {
        "subject": {"name": name, "personal_number": number, "district": "norrmalm"},
        "categories": ["drugs"],
        "priority": "normal",
        "legal_basis": "duty_to_report",
        "narrative": f"Narrative of {name}",
        "submit": True,
    }


def test_a_damaged_referral_is_listed_as_a_marked_skeleton(
    client: FlaskClient, dev_token: Callable[..., str], db_connection: Connection
) -> None:
    worker = {"Authorization": f"Bearer {dev_token('youth_worker', 'ungdomsjouren')}"}
    caseworker = {"Authorization": f"Bearer {dev_token('caseworker', 'norrmalm')}"}
    first = client.post("/api/v1/referrals", json=body("Alfa Exempel", NUMBERS[0]), headers=worker)
    second = client.post("/api/v1/referrals", json=body("Beta Exempel", NUMBERS[1]), headers=worker)
    a, b = first.json["id"], second.json["id"]
    # Disclosed to the unit (two-phase disclosure), so the listing would open them.
    for rid in (a, b):
        revealed = client.post(
            f"/api/v1/referrals/{rid}/reveal",
            json={"reason_code": "known_to_unit"},
            headers=caseworker,
        )
        assert revealed.status_code == 200
    # Transplant A's sealed narrative onto B: B no longer opens, and must not show A's.
    db_connection.execute(
        text(
            "UPDATE referrals SET narrative = (SELECT narrative FROM referrals WHERE id = :a)"
            " WHERE id = :b"
        ),
        {"a": _id(db_connection, a), "b": _id(db_connection, b)},
    )

    listed = client.get("/api/v1/referrals", headers=caseworker)
    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json["items"]}
    assert items[a]["narrative"] == "Narrative of Alfa Exempel"
    assert items[a].get("integrity_error") is None
    assert items[b]["integrity_error"] is True
    assert items[b]["subject"] == {"district": "norrmalm", "age": 15}
    assert items[b]["narrative"] is None
    assert "Alfa" not in json.dumps(items[b])

    found = client.post(
        "/api/v1/referrals/search", json={"personal_number": NUMBERS[1]}, headers=caseworker
    )
    assert found.status_code == 200
    assert found.json == {"items": []}
    assert client.get(f"/api/v1/referrals/{b}", headers=caseworker).status_code == 500


def _sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def _id(connection: Connection, value: str) -> str:
    # SQLAlchemy's Uuid is CHAR(32) hex on SQLite and a native uuid on PostgreSQL.
    return value.replace("-", "") if _sqlite(connection) else value
