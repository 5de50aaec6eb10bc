"""The record of processing (GDPR Art. 30) is derived from the code and cannot drift.

The sealed columns are found in the models by their ``Mapped[sealed]`` annotation; each
must have a description, and every description must name a sealed column.  The attack: a
model that gains a personal field without an entry makes the record refuse to be written,
and the command fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import DeclarativeBase, Mapped

from referrals.db.base import Base, sealed, uuid_pk
from referrals.domain.codes import LegalBasis
from referrals.services import processing_record
from referrals.services.processing_record import (
    LEGAL_BASES,
    PLAINTEXT_FIELDS,
    SEALED_FIELDS,
    UndescribedField,
    personal_fields,
    sealed_columns,
)
from tests.services.test_key_rotation import Deployment, open_deployment


def test_every_sealed_column_has_a_description_and_every_description_a_sealed_column() -> None:
    found = set(sealed_columns())
    # The derivation sees what the models seal (spot checks from each sealing table) ...
    assert {
        ("referrals", "personal_number"),
        ("referrals", "narrative"),
        ("notes", "text"),
        ("timeline_events", "reason_text"),
        ("units", "webhook_secret"),
    } <= found
    # ... and nothing that is not sealed (the wrapped data key is binary, not sealed).
    assert ("referrals", "dek_wrapped") not in found
    assert {
        "sealed columns without a description": sorted(found - set(SEALED_FIELDS)),
        "descriptions of columns that are not sealed": sorted(set(SEALED_FIELDS) - found),
    } == {
        "sealed columns without a description": [],
        "descriptions of columns that are not sealed": [],
    }
    for key, entry in SEALED_FIELDS.items():
        assert entry.description.strip(), key
        assert entry.category.strip(), key
        assert entry.subjects or not entry.personal, key


def test_plaintext_entries_name_columns_that_exist() -> None:
    for table, column in PLAINTEXT_FIELDS:
        assert column in Base.metadata.tables[table].columns, (table, column)


def test_every_legal_basis_code_has_a_description() -> None:
    assert set(LEGAL_BASES) == set(LegalBasis)


class Scratch(DeclarativeBase):
    """A separate registry, so the model below never reaches the real metadata."""


class Followup(Scratch):
    __tablename__ = "followups"

    id: Mapped[uuid_pk]
    # A new personal field nobody described yet.
    school_name: Mapped[sealed]


def test_a_new_personal_field_without_its_entry_stops_the_record() -> None:
    assert sealed_columns(Scratch) == [("followups", "school_name")]
    with pytest.raises(UndescribedField, match=r"followups\.school_name"):
        personal_fields(Scratch)


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


def test_the_command_writes_the_record_in_markdown_and_json(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment.ok("seed", "demo")
    output = tmp_path / "record.json"
    env_days = {"REFERRALS_RETENTION_DRAFT_DAYS": "7", "REFERRALS_RETENTION_COMPLETED_DAYS": "400"}
    for name, value in env_days.items():
        monkeypatch.setenv(name, value)
    written = deployment.ok("privacy", "record", "--format", "json", "--output", str(output))
    assert "record of processing written to" in written
    record = json.loads(output.read_text(encoding="utf-8"))

    sealed = {f["field"] for f in record["personal_data"]["sealed"]}
    assert sealed == {f"{t}.{c}" for t, c in SEALED_FIELDS}
    assert record["legal_bases"].keys() == {b.value for b in LegalBasis}
    assert {r["unit"] for r in record["recipients"]} == {
        "ungdomsjouren", "norrmalm", "sodermalm", "kungsholmen", "intake",
    }  # fmt: skip
    assert record["retention"]["referral draft"] == "7 days"
    assert record["retention"]["referral completed"] == "400 days"
    assert record["retention"]["referral rejected"] == "365 days"
    assert record["transfers_to_third_countries"] == "none"
    assert "young person referred" in record["data_subjects"]

    text = deployment.ok("privacy", "record")
    assert text.startswith("# Record of processing activities (GDPR Art. 30)")
    assert "| `referrals.personal_number` | young person referred | identity |" in text
    assert "`duty_to_report`" in text
    assert "- referral draft: 7 days" in text


def test_the_command_refuses_a_record_with_an_undescribed_field(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = processing_record.personal_fields

    def with_new_field(base: type[DeclarativeBase] = Base) -> object:
        return original(Scratch)

    monkeypatch.setattr(processing_record, "personal_fields", with_new_field)
    refused = deployment.refused("privacy", "record")
    assert "followups.school_name" in refused
    # The scratch model stays out of the real metadata.
    assert "followups" not in Base.metadata.tables
