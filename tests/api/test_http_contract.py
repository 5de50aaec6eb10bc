"""The HTTP contract of README: API overview: ETags and If-Match, merge patches, idempotent create,
keyset pagination, caching headers and the problem+json shape of framework errors."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest

from referrals.auth import devissuer
from referrals.auth.principal import Role
from tests.api.helpers import (
    BLANK,
    CONFLICT,
    NOT_FOUND,
    PRECONDITION_FAILED,
    PRECONDITION_REQUIRED,
    REFERRALS,
    UNPROCESSABLE,
    VALIDATION,
    act,
    assert_problem,
    bearer,
    counts,
    create,
    listed_ids,
    listing,
    personal_number,
    referral_body,
)


@pytest.fixture
def worker_named(instance_path: Any, settings: Any) -> Any:
    """Headers of a youth worker at ungdomsjouren with a subject of the test's choosing."""

    def mint(subject: str) -> dict[str, str]:
        key = devissuer.load_or_create_key(instance_path)
        token = devissuer.mint(
            key,
            role=Role.YOUTH_WORKER,
            unit="ungdomsjouren",
            audience=settings.oidc_audience,
            subject=subject,
        )
        return bearer(token)

    return mint


def url(referral_id: str) -> str:
    return f"{REFERRALS}/{referral_id}"


def patch(client, rid, body, headers, if_match=None):
    if if_match is not None:
        headers = {**headers, "If-Match": if_match}
    return client.patch(url(rid), json=body, headers=headers)


# --- ETag and If-Match ---------------------------------------------------------------------


def test_create_and_get_send_the_version_as_etag(client, actors):
    created = client.post(REFERRALS, json=referral_body(), headers=actors.worker)
    assert created.status_code == 201
    assert created.headers["ETag"] == '"v1"'
    assert created.get_json()["version"] == 1
    rid = created.get_json()["id"]
    assert created.headers["Location"] == url(rid)

    response = client.get(url(rid), headers=actors.worker)

    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'
    assert response.get_json()["id"] == rid


def test_patch_without_if_match_is_428(client, actors, database):
    rid = create(client, actors.worker)["id"]
    stored = counts(database)

    response = patch(client, rid, {"narrative": "Changed."}, actors.worker)

    assert_problem(response, 428, PRECONDITION_REQUIRED)
    assert client.get(url(rid), headers=actors.worker).get_json()["narrative"] != "Changed."
    assert counts(database) == stored


@pytest.mark.parametrize("if_match", ['"v0"', '"v2"', "v1", "garbage"])
def test_patch_with_a_stale_or_foreign_if_match_is_412(client, actors, if_match):
    rid = create(client, actors.worker)["id"]

    response = patch(client, rid, {"narrative": "Changed."}, actors.worker, if_match)

    assert_problem(response, 412, PRECONDITION_FAILED)
    current = client.get(url(rid), headers=actors.worker)
    assert current.headers["ETag"] == '"v1"'
    assert current.get_json()["narrative"] != "Changed."


def test_patch_with_the_current_etag_succeeds_and_bumps_it(client, actors, clock):
    rid = create(client, actors.worker)["id"]
    clock.advance(minutes=5)

    response = patch(client, rid, {"narrative": "Second visit."}, actors.worker, '"v1"')

    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == '"v2"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["version"] == 2
    assert response.get_json()["narrative"] == "Second visit."
    current = client.get(url(rid), headers=actors.worker)
    assert current.headers["ETag"] == '"v2"'
    assert current.get_json()["narrative"] == "Second visit."
    # The old ETag is stale now.
    stale = patch(client, rid, {"narrative": "Third."}, actors.worker, '"v1"')
    assert_problem(stale, 412, PRECONDITION_FAILED)


@pytest.mark.parametrize("if_match", ['W/"v1"', "*", ' "v1" '])
def test_patch_accepts_weak_and_wildcard_if_match(client, actors, if_match):
    rid = create(client, actors.worker)["id"]

    response = patch(client, rid, {"place_met": "Plattan"}, actors.worker, if_match)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["place_met"] == "Plattan"


def test_patch_of_a_submitted_referral_is_409(client, actors, database):
    referral = create(client, actors.worker, submit=True)
    etag = f'"v{referral["version"]}"'
    stored = counts(database)

    response = patch(client, referral["id"], {"narrative": "Too late."}, actors.worker, etag)

    assert_problem(response, 409, CONFLICT)
    current = client.get(url(referral["id"]), headers=actors.worker)
    assert current.headers["ETag"] == etag
    assert current.get_json()["narrative"] == referral["narrative"]
    assert counts(database) == stored


def test_action_with_a_stale_if_match_is_412(client, actors):
    referral = create(client, actors.worker, submit=True)
    rid, etag = referral["id"], f'"v{referral["version"]}"'

    stale = client.post(
        f"{url(rid)}/accept", json={}, headers={**actors.norrmalm, "If-Match": '"v1"'}
    )

    assert_problem(stale, 412, PRECONDITION_FAILED)
    assert client.get(url(rid), headers=actors.norrmalm).get_json()["status"] == "requested"
    fresh = client.post(
        f"{url(rid)}/accept", json={}, headers={**actors.norrmalm, "If-Match": etag}
    )
    assert fresh.status_code == 200, fresh.get_json()
    assert fresh.headers["ETag"] == f'"v{referral["version"] + 1}"'
    # A second accept that saw the old version is refused on the version, not the state.
    again = client.post(
        f"{url(rid)}/accept", json={}, headers={**actors.norrmalm, "If-Match": etag}
    )
    assert_problem(again, 412, PRECONDITION_FAILED)


# --- merge patch ---------------------------------------------------------------------------


def test_patch_merges_nested_objects_and_null_removes(client, actors):
    referral = create(client, actors.worker)
    rid = referral["id"]
    original = referral["subject"]

    response = patch(
        client,
        rid,
        {
            "subject": {"phone": None, "name": "Kim Nyttnamn"},
            "guardian": None,
            "narrative": None,
            "categories": ["alcohol"],
        },
        actors.worker,
        '"v1"',
    )

    assert response.status_code == 200, response.get_json()
    after = response.get_json()
    assert after["subject"] == {
        "name": "Kim Nyttnamn",
        "personal_number": original["personal_number"],
        "birth_date": original["birth_date"],
        "district": original["district"],
    }
    assert after["guardian"] is None
    assert after["narrative"] is None
    assert after["categories"] == ["alcohol"]
    # Untouched fields survive.
    for key in ("place_met", "legal_basis", "priority"):
        assert after[key] == referral[key]
    assert client.get(url(rid), headers=actors.worker).get_json() == after


def test_patch_replaces_the_personal_number_and_its_birth_date(client, actors):
    rid = create(client, actors.worker)["id"]
    number = personal_number(2012, 7, 1, "417")

    response = patch(client, rid, {"subject": {"personal_number": number}}, actors.worker, '"v1"')

    assert response.status_code == 200, response.get_json()
    subject = response.get_json()["subject"]
    assert subject["personal_number"] == number
    assert subject["birth_date"] == "2012-07-01"
    assert subject["name"] == "Kim Exempelsson"


def test_patch_null_subject_removes_the_identity(client, actors):
    rid = create(client, actors.worker)["id"]

    response = patch(client, rid, {"subject": None}, actors.worker, '"v1"')

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["subject"] is None


def test_patched_draft_is_routed_by_its_new_district(client, actors):
    rid = create(client, actors.worker)["id"]
    response = patch(client, rid, {"subject": {"district": "sodermalm"}}, actors.worker, '"v1"')
    assert response.status_code == 200, response.get_json()

    submitted = act(client, rid, "submit", actors.worker)

    assert submitted.status_code == 200, submitted.get_json()
    assert submitted.get_json()["receiving_unit"] == "sodermalm"


def test_invalid_patch_changes_nothing(client, actors, database):
    referral = create(client, actors.worker)
    stored = counts(database)

    response = patch(
        client, referral["id"], {"subject": {"personal_number": "123"}}, actors.worker, '"v1"'
    )

    assert_problem(response, 422, VALIDATION, field="subject.personal_number")
    current = client.get(url(referral["id"]), headers=actors.worker)
    assert current.headers["ETag"] == '"v1"'
    assert current.get_json() == referral
    assert counts(database) == stored


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_first_referral(client, actors, database):
    headers = {**actors.worker, "Idempotency-Key": "visit-2026-11-26-a"}
    body = referral_body(submit=True)
    stored = counts(database)

    first = client.post(REFERRALS, json=body, headers=headers)
    second = client.post(REFERRALS, json=dict(reversed(body.items())), headers=headers)

    assert first.status_code == 201, first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201, second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    assert listed_ids(client, actors.worker) == [first.get_json()["id"]]
    assert counts(database) == (stored[0] + 1, stored[1] + 2)  # create + submit, once


@pytest.mark.parametrize(
    "change",
    [{"narrative": "Another story."}, {"submit": False}, {"priority": "acute"}],
    ids=str,
)
def test_same_idempotency_key_with_another_body_is_422(client, actors, database, change):
    headers = {**actors.worker, "Idempotency-Key": "visit-2026-11-26-b"}
    first = client.post(REFERRALS, json=referral_body(submit=True), headers=headers)
    assert first.status_code == 201
    stored = counts(database)

    response = client.post(
        REFERRALS, json=referral_body(**{"submit": True, **change}), headers=headers
    )

    assert_problem(response, 422, UNPROCESSABLE, field="Idempotency-Key")
    assert counts(database) == stored
    assert listed_ids(client, actors.worker) == [first.get_json()["id"]]


def test_idempotency_keys_of_different_callers_are_independent(client, worker_named):
    body = referral_body()
    first_caller = {**worker_named("worker-one"), "Idempotency-Key": "shared-key"}
    second_caller = {**worker_named("worker-two"), "Idempotency-Key": "shared-key"}

    first = client.post(REFERRALS, json=body, headers=first_caller)
    second = client.post(REFERRALS, json=body, headers=second_caller)

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert "Idempotent-Replayed" not in second.headers
    assert first.get_json()["id"] != second.get_json()["id"]


def test_idempotency_key_is_free_again_after_its_draft_is_deleted(client, actors):
    headers = {**actors.worker, "Idempotency-Key": "draft-then-gone"}
    first = client.post(REFERRALS, json=referral_body(), headers=headers)
    assert client.delete(url(first.get_json()["id"]), headers=actors.worker).status_code == 204

    second = client.post(REFERRALS, json=referral_body(), headers=headers)

    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("key", ["has space", "x" * 201, "åäö"], ids=["space", "long", "non-ascii"])
def test_malformed_idempotency_key_is_422(client, actors, database, key):
    stored = counts(database)

    response = client.post(
        REFERRALS, json=referral_body(), headers={**actors.worker, "Idempotency-Key": key}
    )

    assert_problem(response, 422, UNPROCESSABLE, field="Idempotency-Key")
    assert counts(database) == stored


# --- keyset pagination ---------------------------------------------------------------------------


def pages(client, headers, limit, **params):
    """Follow next_cursor to the end; returns the list of pages' item ids."""
    seen: list[list[str]] = []
    cursor = None
    for _ in range(50):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = listing(client, headers, **query)
        seen.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_keyset_pagination_newest_first(client, actors, clock):
    created = []
    for _ in range(7):
        created.append(create(client, actors.worker, submit=True)["id"])
        clock.advance(minutes=1)
    newest_first = list(reversed(created))

    for headers in (actors.worker, actors.norrmalm):
        seen = pages(client, headers, 3)
        assert [len(p) for p in seen] == [3, 3, 1]
        assert [rid for page in seen for rid in page] == newest_first


def test_pagination_breaks_ties_on_equal_timestamps(client, actors):
    created = {create(client, actors.worker)["id"] for _ in range(5)}

    seen = pages(client, actors.worker, 2)

    assert [len(p) for p in seen] == [2, 2, 1]
    flat = [rid for page in seen for rid in page]
    assert len(flat) == len(set(flat)) == 5
    assert set(flat) == created


def test_pagination_is_stable_when_referrals_arrive_meanwhile(client, actors, clock):
    old = []
    for _ in range(4):
        old.append(create(client, actors.worker)["id"])
        clock.advance(minutes=1)
    first = listing(client, actors.worker, limit=2)
    create(client, actors.worker)  # newer than everything: must not shift the next page

    second = listing(client, actors.worker, limit=2, cursor=first["next_cursor"])

    assert [i["id"] for i in first["items"]] == [old[3], old[2]]
    assert [i["id"] for i in second["items"]] == [old[1], old[0]]
    assert second["next_cursor"] is None


def test_exactly_a_full_last_page_has_no_next_cursor(client, actors, clock):
    for _ in range(3):
        create(client, actors.worker)
        clock.advance(minutes=1)

    page = listing(client, actors.worker, limit=3)

    assert len(page["items"]) == 3
    assert page["next_cursor"] is None


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%%",
        _b64(["not a time", str(uuid.UUID(int=1))]),
        _b64(["2026-11-26T09:00:00+00:00", "not-a-uuid"]),
        _b64(["2026-11-26T09:00:00+00:00"]),
        _b64(42),
    ],
    ids=["garbage", "not-base64", "bad-time", "bad-id", "short", "number"],
)
def test_garbage_cursor_is_422(client, actors, cursor):
    create(client, actors.worker)

    response = client.get(REFERRALS, query_string={"cursor": cursor}, headers=actors.worker)

    assert_problem(response, 422, UNPROCESSABLE, field="cursor")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"priority": "whenever"}, "priority"),
        ({"overdue": "perhaps"}, "overdue"),
        ({"cursor": "x" * 201}, "cursor"),
        # A misspelt filter must not silently list everything.
        ({"stauts": "requested"}, "stauts"),
        ({"sending_unit": "ungdomsjouren"}, "sending_unit"),
    ],
    ids=str,
)
def test_list_query_is_validated(client, actors, params, field):
    response = client.get(REFERRALS, query_string=params, headers=actors.worker)

    assert_problem(response, 422, VALIDATION, field=field)


def test_overdue_false_pages_are_filled_before_the_limit_is_applied(client, actors, clock):
    """The filter belongs in the query: a page must not come back short (or empty) with a
    next_cursor because overdue referrals were dropped after the LIMIT."""
    within = create(client, actors.worker, submit=True)["id"]  # normal: due in 14 days
    clock.advance(minutes=1)
    for _ in range(2):
        create(client, actors.worker, priority="urgent", submit=True)  # due in 3 days
        clock.advance(minutes=1)
    clock.advance(days=4)

    page = listing(client, actors.norrmalm, overdue="false", limit=2)

    assert [item["id"] for item in page["items"]] == [within]
    assert page["next_cursor"] is None


def test_list_filters_by_status_and_priority(client, actors, clock):
    acute = create(client, actors.worker, priority="acute", submit=True)["id"]
    clock.advance(minutes=1)
    normal = create(client, actors.worker, submit=True)["id"]
    clock.advance(minutes=1)
    draft = create(client, actors.worker)["id"]
    assert act(client, normal, "accept", actors.norrmalm).status_code == 200

    assert listed_ids(client, actors.worker, status="draft") == [draft]
    assert listed_ids(client, actors.worker, status="accepted") == [normal]
    assert listed_ids(client, actors.norrmalm, status="requested") == [acute]
    assert listed_ids(client, actors.norrmalm, priority="acute") == [acute]
    assert listed_ids(client, actors.norrmalm) == [normal, acute]


# --- caching ---------------------------------------------------------------------------------


def test_referral_responses_are_not_cached(client, actors):
    created = client.post(REFERRALS, json=referral_body(submit=True), headers=actors.worker)
    rid = created.get_json()["id"]
    note = {"text": "Shared note.", "visibility": "shared"}
    responses = {
        "create": created,
        "get": client.get(url(rid), headers=actors.worker),
        "list": client.get(REFERRALS, headers=actors.norrmalm),
        "events": client.get(f"{url(rid)}/events", headers=actors.worker),
        "add note": client.post(f"{url(rid)}/notes", json=note, headers=actors.worker),
        "notes": client.get(f"{url(rid)}/notes", headers=actors.norrmalm),
        "action": act(client, rid, "accept", actors.norrmalm),
    }
    draft = create(client, actors.worker)["id"]
    responses["patch"] = patch(client, draft, {"narrative": "x"}, actors.worker, '"v1"')

    for name, response in responses.items():
        assert response.status_code in {200, 201}, (name, response.get_json())
        assert response.headers.get("Cache-Control") == "no-store", name


# --- framework errors as problem+json ---------------------------------------------------------


def test_unknown_path_is_404_problem(client):
    response = client.get("/api/v1/no-such-thing")

    body = assert_problem(response, 404, BLANK)
    assert body["detail"]


def test_unknown_referral_is_404_problem(client, actors):
    response = client.get(url(str(uuid.uuid4())), headers=actors.worker)

    assert_problem(response, 404, NOT_FOUND)


def test_referral_id_that_is_not_a_uuid_is_404(client, actors):
    assert_problem(client.get(f"{REFERRALS}/12345", headers=actors.worker), 404, BLANK)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", REFERRALS, {"GET", "POST"}),
        ("post", f"{REFERRALS}/{uuid.UUID(int=7)}", {"GET", "PATCH", "DELETE"}),
        ("get", f"{REFERRALS}/{uuid.UUID(int=7)}/accept", {"POST"}),
        ("post", "/healthz", {"GET"}),
    ],
    # Sorted: a set's order changes with the hash seed, and pytest-xdist workers must
    # collect the same test ids.
    ids=lambda value: ",".join(sorted(value)) if isinstance(value, set) else str(value),
)
def test_wrong_method_is_405_problem_with_allow(client, actors, method, path, allowed):
    response = getattr(client, method)(path, json={}, headers=actors.worker)

    assert_problem(response, 405, BLANK)
    methods = {m.strip() for m in response.headers["Allow"].split(",")}
    assert methods - {"HEAD", "OPTIONS"} == allowed


@pytest.mark.parametrize("data", ['{"subject": ', "{'single': 'quotes'}"])
def test_malformed_json_is_400_problem(client, actors, database, data):
    stored = counts(database)

    response = client.post(
        REFERRALS, data=data, content_type="application/json", headers=actors.worker
    )

    assert_problem(response, 400, VALIDATION)
    assert counts(database) == stored


@pytest.mark.parametrize("data", ['[{"categories": ["drugs"]}]', '"text"', "17"])
def test_json_that_is_not_an_object_is_422(client, actors, database, data):
    stored = counts(database)

    response = client.post(
        REFERRALS, data=data, content_type="application/json", headers=actors.worker
    )

    assert_problem(response, 422, VALIDATION)
    assert counts(database) == stored


def test_action_body_that_is_an_array_is_422(client, actors):
    rid = create(client, actors.worker, submit=True)["id"]

    response = client.post(
        f"{url(rid)}/accept", data="[]", content_type="application/json", headers=actors.norrmalm
    )

    assert_problem(response, 422, VALIDATION)
    assert client.get(url(rid), headers=actors.norrmalm).get_json()["status"] == "requested"


def test_body_over_256_kib_is_413_problem(client, actors, database):
    stored = counts(database)
    body = referral_body(narrative="x" * (256 * 1024))

    response = client.post(REFERRALS, json=body, headers=actors.worker)

    assert_problem(response, 413, BLANK)
    assert counts(database) == stored


def test_body_that_is_not_json_is_refused(client, actors, database):
    """A full referral sent as text/plain must not become an empty draft."""
    stored = counts(database)

    response = client.post(
        REFERRALS,
        data=json.dumps(referral_body()),
        content_type="text/plain",
        headers=actors.worker,
    )

    assert_problem(response, 415, BLANK)
    assert counts(database) == stored


def test_problem_types_use_one_spelling(client, actors):
    """Every problem type is urn:referrals:problem:<kebab-case> (or about:blank)."""
    referral = create(client, actors.worker, submit=True)
    rid = referral["id"]
    draft = create(client, actors.worker)["id"]
    responses = [
        client.get(url(str(uuid.uuid4())), headers=actors.worker),  # 404
        patch(client, draft, {}, actors.worker),  # 428
        patch(client, draft, {}, actors.worker, '"v9"'),  # 412
        patch(client, rid, {}, actors.worker, f'"v{referral["version"]}"'),  # 409
        client.get(REFERRALS, query_string={"cursor": "garbage"}, headers=actors.worker),  # 422
        act(client, rid, "start", actors.norrmalm),  # 409 (domain)
        act(client, rid, "accept", actors.worker),  # 403 (domain)
    ]
    kebab = re.compile(r"urn:referrals:problem:[a-z0-9]+(?:-[a-z0-9]+)*")

    types = {r.get_json()["type"] for r in responses}

    assert len(types) == len(responses)
    assert {t for t in types if not kebab.fullmatch(t)} == set()


# --- operations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [("/healthz", {"status": "ok"}), ("/readyz", {"status": "ok", "audit_sealer": "ok"})],
)
def test_health_endpoints_need_no_token(client, path, body):
    response = client.get(path)

    assert response.status_code == 200
    assert response.get_json() == body


def test_openapi_document_is_served(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/referrals" in spec["paths"]
    assert "/api/v1/referrals/{referral_id}/accept" in spec["paths"]
    assert "patch" in spec["paths"]["/api/v1/referrals/{referral_id}"]
