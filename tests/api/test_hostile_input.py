"""Hostile input never gets a 5xx: each is a 400/422 problem naming the field, and changes
nothing.

Text is checked in one place (``referrals.api.inputs``): every string of a JSON body (keys
too), every query value, the path, and the headers the API reads.  These are the inputs an
API fuzzer and a few hand-made requests answered with 500 or 503 before.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from sqlalchemy import func, select

from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.db.models import AuditEvent
from tests.api.helpers import (
    API,
    REFERRALS,
    UNPROCESSABLE,
    VALIDATION,
    assert_problem,
    counts,
    create,
    referral_body,
)

UNITS = f"{API}/units"
RULES = f"{API}/routing-rules"
AUDIT_EVENTS = f"{API}/audit/events"


def audit_rows(database):
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def post_raw(client, path, data, headers):
    return client.post(path, data=data, content_type="application/json", headers=headers)


# --- JSON bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_400(client, actors, database, depth):
    stored = counts(database)
    data = '{"narrative": ' + "[" * depth + "]" * depth + "}"

    response = post_raw(client, REFERRALS, data, actors.worker)

    assert response.status_code in {400, 422}
    assert_problem(response, response.status_code, VALIDATION)
    assert counts(database) == stored


def test_json_nested_beyond_the_limit_names_the_field(client, actors, database):
    stored = counts(database)
    data = '{"narrative": ' + "[" * 100 + "]" * 100 + "}"

    response = post_raw(client, REFERRALS, data, actors.worker)

    body = assert_problem(response, 422, VALIDATION)
    assert body["errors"][0]["field"].startswith("narrative")
    assert counts(database) == stored


TEXT_FIELDS = {
    "subject.name": lambda v: referral_body(subject={"name": v}),
    "narrative": lambda v: referral_body(narrative=v),
    "place_met": lambda v: referral_body(place_met=v),
    "guardian.name": lambda v: referral_body(guardian={"name": v}),
    "subject.personal_number": lambda v: referral_body(subject={"personal_number": v}),
}


@pytest.mark.parametrize("field", TEXT_FIELDS, ids=str)
@pytest.mark.parametrize(
    "bad",
    ["\ud800", "abc\udfffdef", "a\x00b", "\x00"],
    ids=["lone-high", "lone-low", "nul", "nul-only"],
)
def test_lone_surrogates_and_nul_in_text_are_422_naming_the_field(
    client, actors, database, field, bad
):
    stored = counts(database)
    # ensure_ascii (the default) writes a lone surrogate as the escape "\ud800".
    data = json.dumps(TEXT_FIELDS[field](bad))

    response = post_raw(client, REFERRALS, data, actors.worker)

    assert_problem(response, 422, VALIDATION, field=field)
    assert counts(database) == stored


def test_a_lone_surrogate_in_a_key_is_422(client, actors, database):
    stored = counts(database)
    data = json.dumps({**referral_body(), "\ud800": 1})

    response = post_raw(client, REFERRALS, data, actors.worker)

    assert_problem(response, 422, VALIDATION)
    assert counts(database) == stored


def test_text_is_stored_in_one_normal_form(client, actors):
    """NFC: "å" typed as a + combining ring is stored as the one character."""
    created = create(client, actors.worker, subject={"name": "Ma\u030arten"})

    assert created["subject"]["name"] == "M\u00e5rten"


@pytest.mark.parametrize("digits", [4_301, 10_000])
def test_huge_integer_is_422_naming_the_field(client, dev_token, digits):
    admin = {"Authorization": f"Bearer {dev_token('admin')}"}
    before = client.get(RULES, headers=admin).get_json()
    data = '{"position": ' + "9" * digits + ', "unit": "intake", "match": {}}'

    response = post_raw(client, RULES, data, admin)

    assert_problem(response, 422, VALIDATION, field="position")
    assert client.get(RULES, headers=admin).get_json() == before


def test_fraction_for_an_integer_is_422_not_truncated(client, dev_token):
    admin = {"Authorization": f"Bearer {dev_token('admin')}"}
    before = client.get(RULES, headers=admin).get_json()

    response = client.post(
        RULES,
        json={"position": 5.5, "unit": "intake", "match": {"categories": ["drugs"]}},
        headers=admin,
    )

    assert_problem(response, 422, VALIDATION, field="position")
    assert client.get(RULES, headers=admin).get_json() == before


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_422(client, dev_token, constant):
    admin = {"Authorization": f"Bearer {dev_token('admin')}"}
    before = client.get(RULES, headers=admin).get_json()
    data = '{"position": ' + constant + ', "unit": "intake", "match": {"categories": ["drugs"]}}'

    response = post_raw(client, RULES, data, admin)

    assert_problem(response, 422, VALIDATION, field="position")
    assert client.get(RULES, headers=admin).get_json() == before


def test_huge_integer_in_a_query_is_422(client, actors, database):
    audited = audit_rows(database)

    response = client.get(f"{REFERRALS}?limit={'9' * 4_301}", headers=actors.worker)

    assert_problem(response, 422, VALIDATION, field="limit")
    assert audit_rows(database) == audited + 1  # a refusal, audited as such


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": {"district": "norrmalm\n"}}, "subject.district"),
        ({"subject": {"phone": "070-000 00 00\n"}}, "subject.phone"),
    ],
    ids=["slug", "phone"],
)
def test_a_trailing_newline_does_not_satisfy_a_pattern(client, actors, database, overrides, field):
    """The spec's patterns end in ``$`` (ECMA-262); Python's ``$`` also matches before a
    final newline, so patterns are matched whole."""
    stored = counts(database)

    response = client.post(REFERRALS, json=referral_body(**overrides), headers=actors.worker)

    assert_problem(response, 422, VALIDATION, field=field)
    assert counts(database) == stored


def test_a_required_body_left_out_is_422_naming_a_field(client, dev_token):
    admin = {"Authorization": f"Bearer {dev_token('admin')}"}

    response = client.post(RULES, headers=admin)

    body = assert_problem(response, 422, VALIDATION)
    assert {"position", "unit"} <= {error["field"] for error in body["errors"]}


def test_an_optional_body_may_be_left_out(client, actors):
    rid = create(client, actors.worker, submit=True)["id"]

    response = client.post(f"{REFERRALS}/{rid}/accept", headers=actors.norrmalm)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "accepted"


# --- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:00:00-14:00",
    ],
)
@pytest.mark.parametrize("name", ["since", "until"])
def test_times_at_the_ends_of_the_calendar_are_422(client, dev_token, name, moment):
    auditor = {"Authorization": f"Bearer {dev_token('auditor')}"}

    response = client.get(AUDIT_EVENTS, query_string={name: moment}, headers=auditor)

    assert_problem(response, 422, VALIDATION, field=name)


def test_consent_time_at_the_end_of_the_calendar_is_422(client, actors, database):
    stored = counts(database)
    body = referral_body(
        legal_basis="consent",
        consent={"given_by": "subject", "given_at": "9999-12-31T23:59:59-05:00"},
    )

    response = client.post(REFERRALS, json=body, headers=actors.worker)

    assert_problem(response, 422, VALIDATION, field="consent.given_at")
    assert counts(database) == stored


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{UNITS}/nor%00malm",
        f"{UNITS}/%00",
        f"{RULES}/%00",
        f"{REFERRALS}/%00",
        f"{REFERRALS}/{uuid.UUID(int=0)}%00",
    ],
    ids=["unit", "unit-nul-only", "rule", "referral", "referral-suffix"],
)
@pytest.mark.parametrize("authorized", [True, False], ids=["token", "no-token"])
def test_nul_in_a_path_segment_is_refused_before_the_database(
    client, actors, database, path, authorized
):
    audited = audit_rows(database)
    headers = actors.worker if authorized else {}

    response = client.get(path, headers=headers)

    assert response.status_code in {400, 404}, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    # Nothing reached the database, not even the audit event with the path's id in it.
    assert audit_rows(database) == audited


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (REFERRALS, "cursor"),
        (REFERRALS, "status"),
        (AUDIT_EVENTS, "actor"),
        (AUDIT_EVENTS, "cursor"),
        (f"{API}/admin/deliveries", "unit"),
    ],
)
@pytest.mark.parametrize("authorized", [True, False], ids=["token", "no-token"])
def test_nul_in_a_query_value_is_422_before_the_database(
    client, actors, database, path, name, authorized
):
    audited = audit_rows(database)
    headers = actors.worker if authorized else {}

    response = client.get(f"{path}?{name}=a%00b", headers=headers)

    assert_problem(response, 422, VALIDATION, field=name)
    assert audit_rows(database) == audited


def test_nul_in_a_query_name_is_422(client, actors, database):
    audited = audit_rows(database)

    response = client.get(f"{REFERRALS}?a%00b=1", headers=actors.worker)

    assert_problem(response, 422, VALIDATION)
    assert audit_rows(database) == audited


# --- headers ---------------------------------------------------------------------------------

BAD_HEADER_VALUES = {
    "nul": "a\x00b",
    "control": "a\x07b",
    "non-ascii": "n\u00e4r",
    "over-long": "k" * 1_025,
}


@pytest.mark.parametrize("value", BAD_HEADER_VALUES.values(), ids=BAD_HEADER_VALUES.keys())
@pytest.mark.parametrize("header", ["Idempotency-Key", "If-Match", "X-Break-Glass-Reason"])
def test_bad_header_values_are_422_naming_the_header(client, actors, database, header, value):
    stored = counts(database)

    response = client.post(
        REFERRALS, json=referral_body(), headers={**actors.worker, header: value}
    )

    assert_problem(response, 422, UNPROCESSABLE, field=header)
    assert counts(database) == stored


# --- what a token says -----------------------------------------------------------------------


def _unsigned(claims):
    def part(value):
        raw = json.dumps(value).encode()  # ensure_ascii: "\ud800" travels escaped
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'k'})}.{part(claims)}.AAAA"


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "a\x1bb"], ids=["nul", "surrogate", "esc"])
@pytest.mark.parametrize("claim", ["sub", "iss"])
def test_a_forged_token_with_unreadable_claims_is_a_401_and_audited(client, database, claim, text):
    """The refusal's audit event records what the token claims; text PostgreSQL cannot
    store must not turn the 401 into a 503."""
    audited = audit_rows(database)
    claims = {"iss": "https://idp.example.org", "sub": "someone", claim: text}
    headers = {"Authorization": f"Bearer {_unsigned(claims)}"}

    response = client.get(REFERRALS, headers=headers)

    assert response.status_code == 401, response.get_data(as_text=True)
    assert audit_rows(database) == audited + 1


# (A signer cannot write a lone surrogate as UTF-8: only forged tokens carry one.)
@pytest.mark.parametrize("text", ["a\x00b", "a\x1bb"], ids=["nul", "esc"])
@pytest.mark.parametrize("claim", ["subject", "unit"])
def test_a_valid_token_with_unreadable_claims_is_a_401_and_audited(
    client, database, instance_path, settings, claim, text
):
    """Even a token the service trusts must not name its holder in text the audit trail
    cannot keep: the request is refused (401) and recorded, never a 503."""
    audited = audit_rows(database)
    key = devissuer.load_or_create_key(instance_path)
    names = {"subject": "dev-someone", "unit": "ungdomsjouren", claim: text}
    token = devissuer.mint(
        key,
        role=Role.YOUTH_WORKER,
        unit=names["unit"],
        subject=names["subject"],
        audience=settings.oidc_audience,
    )

    response = client.get(REFERRALS, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401, response.get_data(as_text=True)
    assert audit_rows(database) == audited + 1
