"""Canary values and the scanner that looks for them in raw storage.

A canary is a distinctive made-up value put into a sensitive field.  ``Canaries`` turns
each value into the byte strings ("needles") that would betray it if it were stored in
the clear or in a trivial encoding: UTF-8 (and Latin-1, UTF-16 and JSON-escaped forms),
hex of the UTF-8 in both cases, and base64 of the UTF-8, standard and URL-safe, padded
and unpadded, at every 3-byte alignment (so a value embedded in a longer encoded string
is found too).  A personal number is also tried in its 10- and 12-digit, dashed and
integer forms.  ``scan_database`` reads every cell of every table with plain SQL and
reports each needle found; ``find`` does the same for any blob (a pg_dump, a file, a
response body).

Everything is made up: the names are invented and the personal numbers are test numbers
that only pass the Luhn check.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Connection, inspect, text

from referrals.db.base import Base
from tests.api.helpers import (
    KUNGSHOLMEN,
    REFERRALS,
    SODERMALM,
    Actors,
    act,
    create,
    personal_number,
    referral_body,
)

Needle = tuple[str, bytes]  # (what it is, the bytes to look for)
# Shorter needles could turn up in ciphertext or ids by chance.
MIN_NEEDLE = 8


def _base64_forms(raw: bytes) -> list[tuple[str, bytes]]:
    forms: list[tuple[str, bytes]] = []
    for name, encode in (
        ("base64", base64.b64encode),
        ("base64url", base64.urlsafe_b64encode),
    ):
        whole = encode(raw)
        forms += [(name, whole), (f"{name} unpadded", whole.rstrip(b"="))]
        # The value inside a longer encoded string: only the 4-character groups made of
        # the value's own bytes are predictable, whatever precedes or follows it.
        for shift in (0, 1, 2):
            encoded = encode(bytes(shift) + raw)
            start = 4 if shift else 0
            whole_groups = (shift + len(raw)) // 3
            core = encoded[start : whole_groups * 4]
            if len(core) >= MIN_NEEDLE:
                forms.append((f"{name} embedded at offset {shift}", core))
    return forms


def text_forms(value: str) -> list[tuple[str, bytes]]:
    """Every encoding of ``value`` the scanner looks for."""
    raw = value.encode("utf-8")
    forms = [
        ("utf-8", raw),
        ("utf-16-le", value.encode("utf-16-le")),
        ("utf-16-be", value.encode("utf-16-be")),
        ("json-escaped", json.dumps(value)[1:-1].encode("ascii")),
        ("hex", raw.hex().encode("ascii")),
        ("HEX", raw.hex().upper().encode("ascii")),
        *_base64_forms(raw),
    ]
    if value.isascii() is False and all(ord(c) < 256 for c in value):
        forms.append(("latin-1", value.encode("latin-1")))
    return forms


def personal_number_forms(twelve: str) -> list[tuple[str, str]]:
    """YYYYMMDDNNNC in every written form: 12 and 10 digits, with and without a dash."""
    assert len(twelve) == 12
    assert twelve.isdigit()
    ten = twelve[2:]
    return [
        ("12 digits", twelve),
        ("12 digits dashed", f"{twelve[:8]}-{twelve[8:]}"),
        ("10 digits", ten),
        ("10 digits dashed", f"{ten[:6]}-{ten[6:]}"),
    ]


def integer_forms(digits: str) -> list[tuple[str, bytes]]:
    """The digits as a number: decimal text and 64-bit binary, both byte orders."""
    number = int(digits)
    minimal = (number.bit_length() + 7) // 8
    forms = [
        ("integer decimal", str(number).encode("ascii")),
        ("int64 big-endian", number.to_bytes(8, "big")),
        ("int64 little-endian", number.to_bytes(8, "little")),
    ]
    if minimal >= 5:  # four bytes could occur by chance in kilobytes of ciphertext
        forms += [
            ("integer minimal big-endian", number.to_bytes(minimal, "big")),
            ("integer minimal little-endian", number.to_bytes(minimal, "little")),
        ]
    return forms


@dataclass
class Canaries:
    """Labelled canary values and their needles."""

    values: dict[str, str] = field(default_factory=dict)
    needles: list[Needle] = field(default_factory=list)

    def add(self, label: str, value: str) -> str:
        assert label not in self.values, label
        assert value not in self.values.values(), value
        assert len(value.encode("utf-8")) >= MIN_NEEDLE, (label, value)
        self.values[label] = value
        self.needles += [(f"{label} as {form}", data) for form, data in text_forms(value)]
        return value

    def add_personal_number(self, label: str, twelve: str) -> str:
        self.add(label, twelve)
        for form, written in personal_number_forms(twelve)[1:]:
            self.needles += [
                (f"{label} {form} as {encoding}", data) for encoding, data in text_forms(written)
            ]
        for digits_label, digits in (("12 digits", twelve), ("10 digits", twelve[2:])):
            self.needles += [
                (f"{label} {digits_label} {form}", data) for form, data in integer_forms(digits)
            ]
        return twelve

    def add_birth_date(self, label: str, iso: str) -> str:
        self.add(label, iso)
        compact = iso.replace("-", "")
        self.needles += [(f"{label} compact as {f}", d) for f, d in text_forms(compact)]
        return iso

    def merged(self, other: Canaries) -> Canaries:
        return Canaries({**self.values, **other.values}, [*self.needles, *other.needles])


def find(haystack: bytes, needles: Iterable[Needle]) -> list[str]:
    """The labels of the needles found in ``haystack``."""
    return [label for label, needle in needles if needle in haystack]


def cell_bytes(value: Any) -> bytes:
    """One database cell as bytes, whatever its type: bytes as they are, text as UTF-8,
    JSON values as their JSON text, anything else through ``str``."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    if isinstance(value, datetime | date):
        return value.isoformat().encode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value).encode("ascii")
    return str(value).encode("utf-8")


def all_tables(connection: Connection) -> list[str]:
    """Every table in the database, the models' tables first.

    (An older revision may lack some model tables; every table it has is scanned.)"""
    present = set(inspect(connection).get_table_names())
    assert {"referrals", "notes", "timeline_events"} <= present, sorted(present)
    modelled = [table.name for table in Base.metadata.sorted_tables if table.name in present]
    return modelled + sorted(present - set(modelled))


def raw_cells(connection: Connection) -> list[tuple[str, str, bytes]]:
    """(table, column, bytes) of every cell of every table, read with ``SELECT *``."""
    cells = []
    for table in all_tables(connection):
        result = connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608 (own names)
        columns = list(result.keys())
        for row in result:
            cells += [
                (table, column, cell_bytes(value))
                for column, value in zip(columns, row, strict=True)
            ]
    return cells


def scan_database(connection: Connection, needles: list[Needle]) -> list[str]:
    """Where a needle occurs: ``table.column: label`` for every hit in every cell."""
    hits = []
    for table, column, data in raw_cells(connection):
        hits += [f"{table}.{column}: {label}" for label in find(data, needles)]
    return hits


def strings_in(value: Any) -> set[str]:
    """Every string anywhere in a decoded JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        return set().union(*(strings_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_in(v) for v in value)) if value else set()
    return set()


# --- a populated service --------------------------------------------------------------


@dataclass
class Scenario:
    """Referrals created through the API with a canary in every sensitive field."""

    canaries: Canaries
    # Values the API must still return, and values that were overwritten (raw DB only).
    returned: set[str]
    ids: dict[str, str]


def case_body(canaries: Canaries, tag: str, *, number: str | None, birth: str) -> dict[str, Any]:
    """A referral body whose every personal value is a canary tagged ``tag``."""
    n = "ABCDE".index(tag[0]) + 1  # a digit of its own for each referral's phones
    subject: dict[str, Any] = {
        "name": canaries.add(f"{tag} subject name", f"Zorbalina {tag} Kvittrasdotter"),
        "phone": canaries.add(f"{tag} phone", f"+46 (0)73-9{n}1 82 7{n}"),
    }
    if number is not None:
        subject["personal_number"] = canaries.add_personal_number(f"{tag} personal number", number)
        canaries.add_birth_date(f"{tag} birth date", birth)
    else:
        subject["personal_number"] = None  # referral_body's default subject has one
        subject["birth_date"] = canaries.add_birth_date(f"{tag} birth date", birth)
    return {
        "subject": subject,
        "guardian": {
            "name": canaries.add(f"{tag} guardian name", f"Ottilia {tag} Pjunkmoster"),
            "phone": canaries.add(f"{tag} guardian phone", f"+46 8-55{n} 736 2{n}"),
        },
        "place_met": canaries.add(
            f"{tag} place met", f"{tag}: under Kvarnholmsbrons sjunde pelare vid Vargnäset"
        ),
        "narrative": canaries.add(
            f"{tag} narrative",
            f"{tag}-berättelse: träffades vid den övergivna bergbanan, orolig för "
            "bröderna Blåskägg",
        ),
    }


def reason_body(canaries: Canaries, tag: str, action: str, code: str) -> dict[str, str]:
    label = f"{tag} {action} reason text"
    return {"reason_code": code, "reason_text": canaries.add(label, f"{tag} {action}: skäl x7q")}


def ok_json(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def add_note(
    client: FlaskClient,
    canaries: Canaries,
    referral_id: str,
    headers: Mapping[str, str],
    label: str,
    visibility: str,
) -> None:
    text_ = canaries.add(label, f"{label}: anteckning om Vargnäset q9z")
    response = client.post(
        f"{REFERRALS}/{referral_id}/notes",
        json={"text": text_, "visibility": visibility},
        headers=dict(headers),
    )
    assert ok_json(response, 201)["text"] == text_


def populate(client: FlaskClient, actors: Actors) -> Scenario:
    """Five referrals driven through the lifecycle, every sensitive field a canary:

    Alfa: submitted with an Idempotency-Key, notes of both visibilities from both sides,
    accept, start, hold, resume, fail.  Bravo: no personal number, a birth date, declined.
    Charlie: cancelled by the sender.  Delta (a coordination number): redirected, then
    marked in error.  Echo: a draft whose narrative and place are replaced by PATCH.
    """
    canaries = Canaries()
    ids: dict[str, str] = {}
    stale: set[str] = set()

    def step(tag: str, action: str, who: Mapping[str, str], body: Mapping[str, Any]) -> None:
        ok_json(act(client, ids[tag], action, who, body))

    # Alfa: the whole way to "failed", with every kind of note.
    alfa = case_body(
        canaries, "Alfa", number=personal_number(2012, 7, 23, "417"), birth="2012-07-23"
    )
    response = client.post(
        REFERRALS,
        json=referral_body(**alfa, submit=True),
        headers={**actors.worker, "Idempotency-Key": "canary-alfa-1"},
    )
    ids["Alfa"] = ok_json(response, 201)["id"]
    add_note(client, canaries, ids["Alfa"], actors.worker, "Alfa sender internal note", "internal")
    add_note(client, canaries, ids["Alfa"], actors.worker, "Alfa sender shared note", "shared")
    add_note(
        client, canaries, ids["Alfa"], actors.norrmalm, "Alfa receiver internal note", "internal"
    )
    add_note(client, canaries, ids["Alfa"], actors.norrmalm, "Alfa receiver shared note", "shared")
    step("Alfa", "accept", actors.norrmalm, {})
    step("Alfa", "start", actors.norrmalm, {})
    step(
        "Alfa",
        "hold",
        actors.norrmalm,
        reason_body(canaries, "Alfa", "hold", "awaiting_information"),
    )
    step("Alfa", "resume", actors.norrmalm, {})
    step(
        "Alfa",
        "fail",
        actors.norrmalm,
        reason_body(canaries, "Alfa", "fail", "subject_unreachable"),
    )

    # Bravo: no personal number; declined by Södermalm.
    bravo = case_body(canaries, "Bravo", number=None, birth="2011-02-17")
    bravo["subject"]["district"] = SODERMALM
    ids["Bravo"] = create(client, actors.worker, **bravo, submit=True)["id"]
    step(
        "Bravo",
        "decline",
        actors.sodermalm,
        reason_body(canaries, "Bravo", "decline", "no_capacity"),
    )

    # Charlie: cancelled by the sender while requested.
    charlie = case_body(
        canaries, "Charlie", number=personal_number(2010, 11, 5, "552"), birth="2010-11-05"
    )
    ids["Charlie"] = create(client, actors.worker, **charlie, submit=True)["id"]
    step(
        "Charlie", "cancel", actors.worker, reason_body(canaries, "Charlie", "cancel", "duplicate")
    )

    # Delta: a samordningsnummer; redirected to Kungsholmen, which marks it in error.
    delta_number = personal_number(2013, 4, 9, "731", coordination=True)
    delta = case_body(canaries, "Delta", number=delta_number, birth="2013-04-09")
    ids["Delta"] = create(client, actors.worker, **delta, submit=True)["id"]
    redirect = {**reason_body(canaries, "Delta", "redirect", "wrong_district"), "unit": KUNGSHOLMEN}
    step("Delta", "redirect", actors.norrmalm, redirect)
    mark = reason_body(canaries, "Delta", "mark-error", "data_entry_error")
    step("Delta", "mark-error", actors.kungsholmen, mark)

    # Echo: a draft edited by PATCH; the first narrative and place must vanish for good.
    echo = case_body(
        canaries, "Echo", number=personal_number(2012, 1, 30, "246"), birth="2012-01-30"
    )
    created = create(client, actors.worker, **echo)
    ids["Echo"] = created["id"]
    stale |= {canaries.values["Echo narrative"], canaries.values["Echo place met"]}
    patch = {
        "narrative": canaries.add("Echo revised narrative", "Echo-omskriven: såg Zorbalina i q3x"),
        "place_met": canaries.add("Echo revised place met", "Echo-omskriven plats: Kvarnholmen"),
    }
    response = client.patch(
        f"{REFERRALS}/{ids['Echo']}",
        json=patch,
        headers={**actors.worker, "If-Match": f'"v{created["version"]}"'},
    )
    assert ok_json(response)["narrative"] == patch["narrative"]

    # A search by personal number stores nothing, but runs the blind-index path.
    response = client.post(
        f"{REFERRALS}/search",
        json={"personal_number": canaries.values["Charlie personal number"]},
        headers=dict(actors.worker),
    )
    assert [item["id"] for item in ok_json(response)["items"]] == [ids["Charlie"]]

    returned = set(canaries.values.values()) - stale
    return Scenario(canaries=canaries, returned=returned, ids=ids)


def read_back(client: FlaskClient, actors: Actors, scenario: Scenario) -> set[str]:
    """Every string the API returns for the scenario's referrals, to every party."""
    readers = {
        "Alfa": [actors.worker, actors.norrmalm],
        "Bravo": [actors.worker, actors.sodermalm],
        "Charlie": [actors.worker, actors.norrmalm],
        "Delta": [actors.worker, actors.kungsholmen],
        "Echo": [actors.worker],
    }
    seen: set[str] = set()
    for tag, headers in readers.items():
        referral_id = scenario.ids[tag]
        for who in headers:
            for path in ("", "/events", "/notes"):
                response = client.get(f"{REFERRALS}/{referral_id}{path}", headers=dict(who))
                seen |= strings_in(ok_json(response))
    return seen
