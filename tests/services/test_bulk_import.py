"""``referrals import``: referrals in bulk, validated, sealed, routed and audited like the API's.

The real command against a real instance (SQLite and PostgreSQL), as an operator runs it.
The file holds a canary in every personal field of every line: none may be found in any
cell of any table afterwards, and each reads back through the API as written.  A submitted
line is routed to the unit the API sends the same body to.  A bad line is named by line
number and field, never by value, and nothing of its batch is written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import create_engine, func, select

import referrals.cli.audit
from referrals.db.models import AuditEventTarget, OutboxMessage, Referral, TimelineEvent
from tests.api.helpers import personal_number, with_wrong_check_digit
from tests.crypto.canary import Canaries, case_body, scan_database
from tests.ops.test_operator_audit import VERIFIED, by_operator, events
from tests.services.test_key_rotation import Deployment, open_deployment

TICKET = "CHG-2001"
REFERRER = "ungdomsjouren"  # the demo seed's referring unit
API = "/api/v1/referrals"


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


def line(body: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"sending_unit": REFERRER, **body, **extra}, ensure_ascii=False)


def routed(tag: str, district: str, number: str, birth: str, canaries: Canaries) -> dict[str, Any]:
    body = case_body(canaries, tag, number=number, birth=birth)
    body["subject"]["district"] = district
    return {
        **body,
        "categories": ["drugs"],
        "priority": "urgent",
        "legal_basis": "duty_to_report",
        "submit": True,
    }


def count(deployment: Deployment, model: Any) -> int:
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def test_imported_referrals_are_sealed_routed_and_audited(
    deployment: Deployment, tmp_path: Path
) -> None:
    canaries = Canaries()
    bodies = [
        routed("A", "norrmalm", personal_number(2010, 5, 17, "184"), "2010-05-17", canaries),
        routed("B", "sodermalm", personal_number(2008, 11, 2, "273"), "2008-11-02", canaries),
        {**case_body(canaries, "C", number=None, birth="2012-02-29"), "legal_basis": "consent"},
    ]
    source = tmp_path / "referrals.jsonl"
    source.write_text("\n".join(line(body) for body in bodies) + "\n", encoding="utf-8")

    output = deployment.ok("import", str(source), "--reason", TICKET, "--batch-size", "2")
    assert "3 referrals imported (lines 1 to 3)" in output

    # Not one personal value in the clear (or trivially encoded) anywhere in the database.
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            assert scan_database(connection, canaries.needles) == []
            imported = connection.execute(
                select(Referral.id, Referral.status, Referral.receiving_unit_id).order_by(
                    Referral.created_at
                )
            ).all()
            targets = connection.execute(select(AuditEventTarget.referral_id)).scalars().all()
    finally:
        engine.dispose()
    assert [row.status for row in imported] == ["requested", "requested", "draft"]

    # Read back through the API as the sending unit: every field as written.
    app = deployment.app()
    client = app.test_client()
    worker = deployment.token("youth_worker", REFERRER)
    listed = client.get(API, headers=worker, query_string={"limit": 10}).get_json()["items"]
    assert len(listed) == 3
    names = {
        client.get(f"{API}/{item['id']}", headers=worker).get_json()["subject"]["name"]
        for item in listed
    }
    assert names == {canaries.values[f"{tag} subject name"] for tag in "ABC"}

    # Routed as the API routes the same body (its own rules, its own decision).
    for body, row in zip(bodies[:2], imported[:2], strict=True):
        made = client.post(API, json=body, headers=worker).get_json()
        assert made["receiving_unit"] == row.receiving_unit_id, made
    # Timelines (create, and submit for the submitted ones) and webhooks as for the API.
    assert count(deployment, TimelineEvent) == 5 + 4
    assert count(deployment, OutboxMessage) == 2 + 2

    # Two batches, two events by the operator with the reason, naming every referral.
    recorded = events(deployment, "referrals:import")
    assert sorted(event["target_id"] for event in recorded) == ["1-2", "3-3"]
    assert all(by_operator(event) == (*VERIFIED[:-1], TICKET) for event in recorded)
    assert {row.id for row in imported} <= set(targets)
    deployment.ok("audit", "seal")
    assert deployment.ok("audit", "verify").splitlines()[-1] == "ok"


def test_bad_lines_are_named_and_their_batch_is_not_written(
    deployment: Deployment, tmp_path: Path
) -> None:
    good = {
        "subject": {"name": "Alfa Påhittsson", "personal_number": personal_number(2011, 1, 9)},
        "categories": ["violence"],
        "legal_basis": "duty_to_report",
        "submit": True,
    }
    wrong_number = with_wrong_check_digit(personal_number(2010, 4, 4, "571"))
    lines = [
        line(good),
        line(good),
        line(good),
        line({**good, "subject": {"personal_number": wrong_number}}),  # 4: check digit
        line({**good, "status": "accepted"}),  # 5: not a field of the body
        '{"sending_unit": "ungdomsjouren", "subject": ',  # 6: not JSON
        line({**good, "legal_basis": None}),  # 7: submit needs a legal basis
        json.dumps({**good, "sending_unit": "norrmalm"}),  # 8: not a referring unit
        line(good),
    ]
    source = tmp_path / "referrals.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    output = deployment.refused("import", str(source), "--reason", TICKET, "--batch-size", "3")
    assert "line 5: status: Unknown field." in output
    assert "line 6: (line): not valid JSON" in output
    assert "--start-line 4" in output
    # Never the value at fault.
    assert wrong_number not in output
    assert count(deployment, Referral) == 3

    # Schema errors stop a batch before any use case runs; the use case's own rules are
    # reported the same way once the schema is satisfied.
    fixed = [*lines[:4], line(good), line(good), *lines[6:]]
    source.write_text("\n".join(fixed) + "\n", encoding="utf-8")
    output = deployment.refused(
        "import", str(source), "--reason", TICKET, "--batch-size", "3", "--start-line", "4"
    )
    assert "line 4: subject.personal_number:" in output
    assert "--start-line 4" in output
    assert count(deployment, Referral) == 3

    fixed = lines[:3] + [line(good)] * 4 + [line(good), lines[8]]
    source.write_text("\n".join(fixed) + "\n", encoding="utf-8")
    output = deployment.ok(
        "import", str(source), "--reason", TICKET, "--batch-size", "3", "--start-line", "4"
    )
    assert "6 referrals imported (lines 4 to 9)" in output
    assert count(deployment, Referral) == 9

    refused = [e for e in events(deployment, "referrals:import") if e["outcome"] != "allowed"]
    assert len(refused) == 2
    assert all(e["http_status"] == 422 for e in refused)


def test_use_case_rules_are_reported_per_line(deployment: Deployment, tmp_path: Path) -> None:
    good = {
        "subject": {"name": "Beta Påhittsson", "personal_number": personal_number(2011, 2, 9)},
        "categories": ["violence"],
        "legal_basis": "duty_to_report",
        "submit": True,
    }
    lines = [
        line(good),
        line({**good, "legal_basis": None}),
        json.dumps({**good, "sending_unit": "norrmalm"}),
        line({**good, "subject": {"personal_number": "201102090000"}}),
    ]
    source = tmp_path / "referrals.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = deployment.refused("import", str(source), "--reason", TICKET)
    assert "line 2: legal_basis:" in output
    assert "line 3: sending_unit: not a registered referring unit" in output
    assert "line 4: subject.personal_number:" in output
    assert "--start-line 1" in output
    assert count(deployment, Referral) == 0
    assert str(uuid.UUID(int=0)) not in output


def test_audit_seal_seals_everything_pending_in_batches(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Without --follow the command seals all that waits, not one batch (it used to stop
    at 1,000); here batches of two, so several transactions."""
    good = {"subject": {"name": "Gamma Påhittsson"}, "categories": ["violence"]}
    source = tmp_path / "referrals.jsonl"
    source.write_text("\n".join(line(good) for _ in range(5)) + "\n", encoding="utf-8")
    deployment.ok("import", str(source), "--reason", TICKET, "--batch-size", "1")
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            waiting = int(
                connection.exec_driver_sql("SELECT count(*) FROM audit_pending").scalar_one()
            )
    finally:
        engine.dispose()
    assert waiting >= 7  # db upgrade, seed, five batches
    with mock.patch.object(referrals.cli.audit, "SEAL_BATCH", 2):
        output = deployment.ok("audit", "seal")
    assert f"{waiting} events sealed" in output
    verified = deployment.ok("audit", "verify").splitlines()
    assert verified[-1] == "ok"
    assert any(
        f"{waiting} sealed events" in text and "0 awaiting sealing" in text for text in verified
    )


# Columns that differ between any two referrals made at different moments by different
# callers (ids, times, who; the sealed values and their data key differ by design).
PER_CALL = {"id", "referral_id", "created_at", "updated_at", "submitted_at", "due_at", "at"}
PER_CALL |= {"next_attempt_at", "created_by", "actor", "payload", "dek_wrapped"}


def _shape(row: Any, table: Any) -> dict[str, Any]:
    """A row's columns as comparable between two referrals of the same body: sealed
    columns by whether they hold anything, per-call columns not at all."""
    shaped = {}
    for column in table.columns:
        value = row._mapping[column]
        if column.name in PER_CALL:
            continue
        shaped[column.name] = (value is not None) if isinstance(value, bytes) else value
    return shaped


def test_imported_rows_are_the_rows_the_api_writes(deployment: Deployment, tmp_path: Path) -> None:
    """Column for column, an imported referral, its timeline and its outbox messages are
    what the API writes for the same body (the import writes them with Core statements,
    not a flush): version included, so an ETag means the same whichever way it was made."""
    canaries = Canaries()
    bodies = [
        routed("A", "norrmalm", personal_number(2010, 5, 17, "184"), "2010-05-17", canaries),
        {**case_body(canaries, "C", number=None, birth="2012-02-29"), "legal_basis": "consent"},
    ]
    source = tmp_path / "referrals.jsonl"
    source.write_text("\n".join(line(body) for body in bodies) + "\n", encoding="utf-8")
    deployment.ok("import", str(source), "--reason", TICKET)
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            imported_ids = (
                connection.execute(
                    select(Referral.id).order_by(Referral.created_at, Referral.status.desc())
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    client = deployment.app().test_client()
    worker = deployment.token("youth_worker", REFERRER)
    made_ids = [
        uuid.UUID(client.post(API, json=body, headers=worker).get_json()["id"]) for body in bodies
    ]
    engine = create_engine(deployment.url)
    try:
        with engine.connect() as connection:
            for imported, made in zip(imported_ids, made_ids, strict=True):
                for model, key in (
                    (Referral, Referral.id),
                    (TimelineEvent, TimelineEvent.referral_id),
                    (OutboxMessage, OutboxMessage.referral_id),
                ):
                    ours = _rows(connection, model, key, imported)
                    assert ours == _rows(connection, model, key, made), model.__tablename__
                    # Something compared: the draft alone announces nothing.
                    assert ours or (model is OutboxMessage and imported == imported_ids[1])
    finally:
        engine.dispose()


def _rows(connection: Any, model: Any, key: Any, referral: uuid.UUID) -> list[dict[str, Any]]:
    found = connection.execute(select(model.__table__).where(key == referral)).all()
    shaped = [_shape(row, model.__table__) for row in found]
    return sorted(shaped, key=lambda r: json.dumps(r, default=str))
