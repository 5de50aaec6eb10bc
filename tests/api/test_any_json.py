"""Property: any JSON, and valid bodies spoilt with hostile text, at every operation that
reads a body, as the role that may use it: never a 5xx, every refusal a problem.

Text checks live in one place (``referrals.api.inputs``); this throws at every operation
what the targeted tests in ``test_hostile_input`` throw at a few fields.
"""

from __future__ import annotations

import json
import re
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import API, create, referral_body

# --- any JSON at every operation -------------------------------------------------------------

# Text with everything JSON can carry, hostile characters made likely: NUL, lone
# surrogates, an escape, a combining mark (NFC must fold it).
HOSTILE = st.sampled_from(["\x00", "\ud800", "\udfff", "\x1b", "\u030a"])
ANY_TEXT = st.text(st.characters(codec=None) | HOSTILE, min_size=1, max_size=20)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)

# A valid body for each operation, to be spoilt in one place: random JSON alone is mostly
# refused at its first unknown key, before any text reaches a field that keeps it.
REASON = {"reason_code": "no_capacity", "reason_text": "Full this week."}
VALID_BODIES = {
    "/notes": {"text": "A note.", "visibility": "shared"},
    "/accept": {"assignee": "dev-caseworker@norrmalm"},
    "/assign": {"assignee": "dev-caseworker@norrmalm"},
    "/reassign": {"from": "dev-caseworker@norrmalm", "to": "dev-unit_lead@norrmalm"},
    "/redirect": {**REASON, "unit": "sodermalm"},
    "/complete": {"outcome_code": "support_started"},
    "/search": {"personal_number": "19121212-1212"},
    "/routing-rules": {"position": 15, "unit": "sodermalm", "match": {"districts": ["x"]}},
    "/units": {"id": "enhet", "name": "Enhet", "kind": "receiver", "districts": ["norrmalm"]},
}


def valid_body(path):
    for suffix, body in VALID_BODIES.items():
        if path.endswith(suffix) or f"{suffix}/" in path:
            return body
    if path.rsplit("/", 1)[-1] in {"decline", "cancel", "hold", "fail", "mark-error"}:
        return REASON
    return referral_body()


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    yield path


def _replaced(body, path, new):
    if not path:
        return new
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


# Text with at least one hostile character in it, somewhere.
HOSTILE_TEXT = st.builds(lambda a, h, b: a + h + b, ANY_TEXT | st.just(""), HOSTILE, ANY_TEXT)


def _text_leaves(body):
    return [path for path in _leaves(body) if path and isinstance(_at(body, path), str)]


def _at(body, path):
    for step in path:
        body = body[step]
    return body


@st.composite
def spoilt(draw, body):
    """``body`` with one text replaced by hostile text, or any value or key by any JSON."""
    if draw(st.booleans()):
        return _replaced(body, draw(st.sampled_from(_text_leaves(body))), draw(HOSTILE_TEXT))
    path = draw(st.sampled_from(list(_leaves(body))))
    if path and draw(st.booleans()):
        return _replaced(body, path[:-1], {draw(ANY_TEXT): draw(ANY_JSON)})
    return _replaced(body, path, draw(ANY_JSON))


def body_operations(app, submitted, draft):
    """(method, path) of every operation that reads a JSON body, on real objects: text
    reaches the fields that keep it only when the referral exists and may be changed."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API):
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            samples = {
                "referral_id": draft if method == "PATCH" else submitted,
                "unit_id": "norrmalm",
                "rule_id": str(uuid.UUID(int=1)),
            }
            path = rule.rule
            for name, value in samples.items():
                path = re.sub(rf"<[^>]*:{name}>", value, path)
            found.append((method, path))
    return found


RECEIVER_ACTIONS = {
    "assign",
    "accept",
    "decline",
    "redirect",
    "start",
    "hold",
    "resume",
    "complete",
    "fail",
}


def caller_for(path):
    """The role that may use the operation: a refusal by role would hide the body's fate."""
    if path.endswith("/reassign"):
        return ("unit_lead", "norrmalm")
    if path.startswith((f"{API}/units", f"{API}/routing-rules")):
        return ("admin", None)
    if path.rsplit("/", 1)[-1] in RECEIVER_ACTIONS:
        return ("caseworker", "norrmalm")  # the demo rules route norrmalm's referrals here
    return ("youth_worker", "ungdomsjouren")


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_json_at_any_operation_is_never_a_5xx(app, client, actors, dev_token, data):
    submitted = create(client, actors.worker, submit=True)["id"]
    draft = create(client, actors.worker)["id"]

    for method, path in body_operations(app, submitted, draft):
        token = dev_token(*caller_for(path))
        body = spoilt(valid_body(path))
        document = data.draw(st.one_of(body, body, ANY_JSON), label=f"{method} {path}")
        response = client.open(
            path,
            method=method,
            data=json.dumps(document),  # ensure_ascii: a lone surrogate travels as "\ud800"
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}", "If-Match": '"v1"'},
        )

        assert response.status_code < 500, (method, path, response.get_data(as_text=True))
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json"
