"""Tampered ciphertext fails closed: an integrity error, never someone else's data.

Through the database (raw SQL on the test's connection, then a read through the API) and
through the vault directly: a sealed value copied to another referral or another field, data
keys swapped between referrals, a flipped or truncated blob, an unknown key id or format
version must each fail to open.  Over HTTP that is a 500 problem of type
``urn:referrals:problem:integrity-error`` whose body holds nothing of either referral.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Table, func, select
from werkzeug.test import TestResponse

from referrals.crypto.aead import DecryptionError
from referrals.crypto.keyring import KeyringFile
from referrals.db.base import Base
from referrals.db.models import Referral
from referrals.services.records import CASE_FIELDS
from referrals.services.vault import NewSealer, Vault
from tests.api.helpers import REFERRALS, Actors, act, personal_number, referral_body
from tests.crypto.canary import (
    Canaries,
    add_note,
    case_body,
    find,
    ok_json,
    reason_body,
    strings_in,
)

REFERRALS_TABLE = Base.metadata.tables["referrals"]
NOTES_TABLE = Base.metadata.tables["notes"]
EVENTS_TABLE = Base.metadata.tables["timeline_events"]

INTEGRITY_PROBLEM = {
    "type": "urn:referrals:problem:integrity-error",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "Stored data failed its integrity check; nothing of it is returned.",
}

Mangle = Callable[[bytes], bytes]


def _header_length(blob: bytes) -> int:
    return 2 + blob[1]


def _flip(index: Callable[[bytes], int]) -> Mangle:
    def mangle(blob: bytes) -> bytes:
        i = index(blob)
        return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]

    return mangle


def _other_key_id(blob: bytes) -> bytes:
    """The same blob under a key id of the same length that no key has."""
    end = _header_length(blob)
    key_id = blob[2:end].decode("ascii")
    other = key_id[:-1] + ("9" if key_id[-1] != "9" else "8")
    return blob[:2] + other.encode("ascii") + blob[end:]


def _longer_key_id(blob: bytes) -> bytes:
    end = _header_length(blob)
    return bytes((blob[0], blob[1] + 1)) + blob[2:end] + b"0" + blob[end:]


MANGLES: dict[str, Mangle] = {
    "flip a key id byte": _flip(lambda b: 2),
    "flip a nonce byte": _flip(_header_length),
    "flip a ciphertext byte": _flip(lambda b: _header_length(b) + 12),
    "flip a tag byte": _flip(lambda b: len(b) - 1),
    "truncate by one byte": lambda b: b[:-1],
    "truncate inside the nonce": lambda b: b[: _header_length(b) + 6],
    "truncate to the version byte": lambda b: b[:1],
    "empty": lambda b: b"",
    "version 0": lambda b: b"\x00" + b[1:],
    "version 2": lambda b: b"\x02" + b[1:],
    "unknown key id": _other_key_id,
    "longer key id": _longer_key_id,
    "appended byte": lambda b: b + b"\x00",
}


# --- through the database and the API ---------------------------------------------------


@dataclass
class Case:
    id: uuid.UUID
    canaries: Canaries
    note_ids: list[uuid.UUID]


@pytest.fixture
def actors(dev_token: Any) -> Actors:
    return Actors(dev_token)


def open_case(client: FlaskClient, actors: Actors, tag: str, serial: str) -> Case:
    """A referral at Norrmalm, on hold, with a canary in every sealed column: its eight
    fields, a shared and an internal note, and a hold reason text."""
    canaries = Canaries()
    body = case_body(canaries, tag, number=personal_number(2012, 5, 17, serial), birth="2012-05-17")
    response = client.post(
        REFERRALS, json=referral_body(**body, submit=True), headers=dict(actors.worker)
    )
    referral_id = ok_json(response, 201)["id"]
    add_note(client, canaries, referral_id, actors.norrmalm, f"{tag} shared note", "shared")
    add_note(client, canaries, referral_id, actors.norrmalm, f"{tag} internal note", "internal")
    for action, body_ in (
        ("accept", {}),
        ("start", {}),
        ("hold", reason_body(canaries, tag, "hold", "awaiting_information")),
    ):
        ok_json(act(client, referral_id, action, actors.norrmalm, body_))
    notes = ok_json(client.get(f"{REFERRALS}/{referral_id}/notes", headers=actors.norrmalm))
    return Case(
        id=uuid.UUID(referral_id),
        canaries=canaries,
        note_ids=[uuid.UUID(n["id"]) for n in notes["items"]],
    )


@pytest.fixture
def cases(app: Flask, client: FlaskClient, actors: Actors) -> tuple[Case, Case]:
    return open_case(client, actors, "Alfa", "417"), open_case(client, actors, "Bravo", "552")


def read(connection: Connection, table: Table, row_id: uuid.UUID, column: str) -> bytes:
    value = connection.execute(select(table.c[column]).where(table.c.id == row_id)).scalar_one()
    assert value, (table.name, column)
    return bytes(value)


def write(connection: Connection, table: Table, row_id: uuid.UUID, **values: Any) -> None:
    result = connection.execute(table.update().where(table.c.id == row_id).values(**values))
    assert result.rowcount == 1


def reason_event(connection: Connection, case: Case) -> uuid.UUID:
    event_id: uuid.UUID = connection.execute(
        select(EVENTS_TABLE.c.id).where(
            EVENTS_TABLE.c.referral_id == case.id, EVENTS_TABLE.c.reason_text.is_not(None)
        )
    ).scalar_one()
    return event_id


def get(client: FlaskClient, actors: Actors, case: Case, path: str = "") -> TestResponse:
    return client.get(f"{REFERRALS}/{case.id}{path}", headers=dict(actors.norrmalm))


def assert_integrity_failure(response: TestResponse, *cases: Case) -> None:
    """The integrity problem, exactly, with no trace of any of ``cases``' values."""
    assert response.status_code == 500, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == INTEGRITY_PROBLEM
    raw = response.get_data()
    for case in cases:
        assert find(raw, case.canaries.needles) == []
        assert str(case.id).encode() not in raw


def assert_no_leak(response: TestResponse, source: Case, planted_in: Case) -> None:
    """A multi-referral answer (a listing, a search): the integrity problem, or a success
    whose item for ``planted_in`` (if any) holds nothing of ``source``."""
    if response.status_code == 500:
        assert_integrity_failure(response, source)
        return
    assert response.status_code == 200, response.get_data(as_text=True)
    for item in response.get_json()["items"]:
        if item["id"] == str(planted_in.id):
            assert find(json.dumps(item).encode(), source.canaries.needles) == []


def test_the_cases_read_back_before_any_tampering(
    client: FlaskClient, actors: Actors, cases: tuple[Case, Case]
) -> None:
    """The baseline: without tampering every sealed value opens."""
    for case in cases:
        seen: set[str] = set()
        for path in ("", "/notes", "/events"):
            seen |= strings_in(ok_json(get(client, actors, case, path)))
        assert set(case.canaries.values.values()) <= seen


@pytest.mark.parametrize("field", CASE_FIELDS)
def test_field_copied_from_another_referral_fails(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    cases: tuple[Case, Case],
    field: str,
) -> None:
    a, b = cases
    write(
        db_connection,
        REFERRALS_TABLE,
        b.id,
        **{field: read(db_connection, REFERRALS_TABLE, a.id, field)},
    )
    assert_integrity_failure(get(client, actors, b), a, b)
    # Norrmalm's inbox holds both: it may fail as a whole or leave B out, never show A's
    # value under B.
    assert_no_leak(client.get(REFERRALS, headers=dict(actors.norrmalm)), a, b)


@pytest.mark.parametrize(
    ("source", "target"),
    [("narrative", "place_met"), ("subject_name", "guardian_name"), ("phone", "guardian_phone")],
)
def test_field_copied_to_another_field_of_the_same_referral_fails(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    cases: tuple[Case, Case],
    source: str,
    target: str,
) -> None:
    _, b = cases
    write(
        db_connection,
        REFERRALS_TABLE,
        b.id,
        **{target: read(db_connection, REFERRALS_TABLE, b.id, source)},
    )
    assert_integrity_failure(get(client, actors, b), b)


def test_swapped_data_keys_fail_for_both_referrals(
    client: FlaskClient, actors: Actors, db_connection: Connection, cases: tuple[Case, Case]
) -> None:
    a, b = cases
    key_a = read(db_connection, REFERRALS_TABLE, a.id, "dek_wrapped")
    key_b = read(db_connection, REFERRALS_TABLE, b.id, "dek_wrapped")
    write(db_connection, REFERRALS_TABLE, a.id, dek_wrapped=key_b)
    write(db_connection, REFERRALS_TABLE, b.id, dek_wrapped=key_a)
    for case in cases:
        for path in ("", "/notes", "/events"):
            assert_integrity_failure(get(client, actors, case, path), a, b)


def test_whole_envelope_transplanted_to_another_referral_fails(
    client: FlaskClient, actors: Actors, db_connection: Connection, cases: tuple[Case, Case]
) -> None:
    """A's wrapped key and every sealed field, copied onto B: still bound to A's id."""
    a, b = cases
    columns = ("dek_wrapped", "kek_id", *CASE_FIELDS)
    row = db_connection.execute(
        select(*(REFERRALS_TABLE.c[c] for c in columns)).where(REFERRALS_TABLE.c.id == a.id)
    ).one()
    write(db_connection, REFERRALS_TABLE, b.id, **dict(zip(columns, row, strict=True)))
    assert_integrity_failure(get(client, actors, b), a, b)


# Every mangle is tried against the sealer below; through the API, one of each kind.
THROUGH_API = (
    "flip a ciphertext byte",
    "flip a tag byte",
    "truncate by one byte",
    "empty",
    "version 2",
    "unknown key id",
)


@pytest.mark.parametrize("mangle", [MANGLES[k] for k in THROUGH_API], ids=THROUGH_API)
def test_mangled_field_ciphertext_fails(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    cases: tuple[Case, Case],
    mangle: Mangle,
) -> None:
    _, b = cases
    write(
        db_connection,
        REFERRALS_TABLE,
        b.id,
        narrative=mangle(read(db_connection, REFERRALS_TABLE, b.id, "narrative")),
    )
    assert_integrity_failure(get(client, actors, b), b)


@pytest.mark.parametrize(
    "mangle",
    [
        MANGLES[k]
        for k in ("flip a tag byte", "truncate by one byte", "version 2", "unknown key id")
    ],
    ids=["flip a tag byte", "truncate by one byte", "version 2", "unknown KEK id"],
)
def test_mangled_wrapped_data_key_fails(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    cases: tuple[Case, Case],
    mangle: Mangle,
) -> None:
    _, b = cases
    wrapped = read(db_connection, REFERRALS_TABLE, b.id, "dek_wrapped")
    write(db_connection, REFERRALS_TABLE, b.id, dek_wrapped=mangle(wrapped))
    assert_integrity_failure(get(client, actors, b), b)


@pytest.mark.parametrize("source", ["other referral", "same referral"])
def test_note_text_copied_to_another_note_fails(
    client: FlaskClient,
    actors: Actors,
    db_connection: Connection,
    cases: tuple[Case, Case],
    source: str,
) -> None:
    a, b = cases
    origin = a.note_ids[0] if source == "other referral" else b.note_ids[1]
    write(
        db_connection,
        NOTES_TABLE,
        b.note_ids[0],
        text=read(db_connection, NOTES_TABLE, origin, "text"),
    )
    assert_integrity_failure(get(client, actors, b, "/notes"), a, b)


def test_reason_text_copied_to_another_referrals_event_fails(
    client: FlaskClient, actors: Actors, db_connection: Connection, cases: tuple[Case, Case]
) -> None:
    a, b = cases
    stolen = read(db_connection, EVENTS_TABLE, reason_event(db_connection, a), "reason_text")
    write(db_connection, EVENTS_TABLE, reason_event(db_connection, b), reason_text=stolen)
    assert_integrity_failure(get(client, actors, b, "/events"), a, b)


def test_tampered_referral_refuses_every_change(
    client: FlaskClient, actors: Actors, db_connection: Connection, cases: tuple[Case, Case]
) -> None:
    """A transition on a referral that does not open is refused and changes nothing."""
    a, b = cases
    write(
        db_connection,
        REFERRALS_TABLE,
        b.id,
        narrative=read(db_connection, REFERRALS_TABLE, a.id, "narrative"),
    )
    before = db_connection.execute(
        select(REFERRALS_TABLE.c.status, REFERRALS_TABLE.c.version).where(
            REFERRALS_TABLE.c.id == b.id
        )
    ).one()
    events_before = db_connection.execute(
        select(func.count()).select_from(EVENTS_TABLE).where(EVENTS_TABLE.c.referral_id == b.id)
    ).scalar_one()

    assert_integrity_failure(act(client, str(b.id), "resume", actors.norrmalm), a, b)

    after = db_connection.execute(
        select(REFERRALS_TABLE.c.status, REFERRALS_TABLE.c.version).where(
            REFERRALS_TABLE.c.id == b.id
        )
    ).one()
    events_after = db_connection.execute(
        select(func.count()).select_from(EVENTS_TABLE).where(EVENTS_TABLE.c.referral_id == b.id)
    ).scalar_one()
    assert (after, events_after) == (before, events_before)


def test_search_over_a_tampered_candidate_returns_nothing_of_it(
    client: FlaskClient, actors: Actors, db_connection: Connection, cases: tuple[Case, Case]
) -> None:
    a, b = cases
    write(
        db_connection,
        REFERRALS_TABLE,
        b.id,
        personal_number=read(db_connection, REFERRALS_TABLE, a.id, "personal_number"),
    )
    response = client.post(
        f"{REFERRALS}/search",
        json={"personal_number": b.canaries.values["Bravo personal number"]},
        headers=dict(actors.norrmalm),
    )
    assert_no_leak(response, a, b)


# --- the vault and sealer directly ------------------------------------------------------

REFERRAL_A = "5b0e7c1a-0000-4000-8000-00000000000a"
REFERRAL_B = "5b0e7c1a-0000-4000-8000-00000000000b"
SECRET = "Zorbalina Kvittrasdotter, träffad vid bergbanan"


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    keyring = KeyringFile(tmp_path / "keyring.json")
    keyring.create(development=True)
    return Vault(keyring)


def stored(referral_id: str, wrapped: bytes) -> Referral:
    return Referral(id=uuid.UUID(referral_id), dek_wrapped=wrapped)


def test_vault_round_trip(vault: Vault) -> None:
    """The baseline the failures below are measured against."""
    new = vault.new_sealer_for_id(REFERRAL_A)
    blob = new.seal("referrals", REFERRAL_A, "narrative", SECRET)
    assert blob is not None
    reopened = vault.sealer(stored(REFERRAL_A, new.wrapped))
    assert reopened.open("referrals", REFERRAL_A, "narrative", blob) == SECRET


@pytest.mark.parametrize("mangle", MANGLES.values(), ids=MANGLES.keys())
def test_sealer_refuses_a_mangled_blob(vault: Vault, mangle: Mangle) -> None:
    sealer = vault.new_sealer_for_id(REFERRAL_A)
    blob = sealer.seal("referrals", REFERRAL_A, "narrative", SECRET)
    assert blob is not None
    with pytest.raises(DecryptionError):
        sealer.open("referrals", REFERRAL_A, "narrative", mangle(blob))


@pytest.mark.parametrize(
    "place",
    [
        ("referrals", REFERRAL_B, "narrative"),
        ("referrals", REFERRAL_A, "place_met"),
        ("notes", REFERRAL_A, "narrative"),
    ],
    ids=["other record", "other field", "other table"],
)
def test_sealer_refuses_a_blob_moved_elsewhere(vault: Vault, place: tuple[str, str, str]) -> None:
    sealer = vault.new_sealer_for_id(REFERRAL_A)
    blob = sealer.seal("referrals", REFERRAL_A, "narrative", SECRET)
    with pytest.raises(DecryptionError):
        sealer.open(*place, blob)


def _two(vault: Vault) -> tuple[NewSealer, NewSealer]:
    return vault.new_sealer_for_id(REFERRAL_A), vault.new_sealer_for_id(REFERRAL_B)


def test_sealer_refuses_another_referrals_blob(vault: Vault) -> None:
    a, b = _two(vault)
    blob = a.seal("referrals", REFERRAL_A, "narrative", SECRET)
    assert blob is not None
    with pytest.raises(DecryptionError):
        b.open("referrals", REFERRAL_A, "narrative", blob)
    # Relabelled with B's own key id, A's blob fails authentication under B's key.
    relabelled = blob[:2] + b.dek.key_id.encode("ascii") + blob[_header_length(blob) :]
    with pytest.raises(DecryptionError):
        b.open("referrals", REFERRAL_A, "narrative", relabelled)


def test_vault_refuses_swapped_wrapped_keys(vault: Vault) -> None:
    a, b = _two(vault)
    with pytest.raises(DecryptionError):
        vault.sealer(stored(REFERRAL_A, b.wrapped))
    with pytest.raises(DecryptionError):
        vault.sealer(stored(REFERRAL_B, a.wrapped))


@pytest.mark.parametrize("mangle", MANGLES.values(), ids=MANGLES.keys())
def test_vault_refuses_a_mangled_wrapped_key(vault: Vault, mangle: Mangle) -> None:
    new = vault.new_sealer_for_id(REFERRAL_A)
    with pytest.raises(DecryptionError):
        vault.sealer(stored(REFERRAL_A, mangle(new.wrapped)))


def test_vault_refuses_a_key_wrapped_by_a_kek_it_does_not_hold(tmp_path: Path) -> None:
    other = KeyringFile(tmp_path / "other.json")
    other.create(development=True)
    mine = KeyringFile(tmp_path / "mine.json")
    mine.create(development=True)
    # Both keyrings call their KEK "kek-1": same id, different key.
    wrapped = Vault(other).new_sealer_for_id(REFERRAL_A).wrapped
    with pytest.raises(DecryptionError):
        Vault(mine).sealer(stored(REFERRAL_A, wrapped))
