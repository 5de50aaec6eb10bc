"""Self-tests of the webhook test support: the signature verifier and the loopback receiver.

The delivery tests trust both; these prove the verifier matches the published spec vector
and the receiver really behaves as scripted on a real socket.  No app or database needed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.support.standard_webhooks import WebhookVerificationError, sign, verify
from tests.support.webhook_receiver import Drop, Slow, WebhookReceiver

# The test vector published with the Standard Webhooks reference libraries: repository
# standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py, test_sign_function.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"


def vector_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return headers


def post(url: str, body: bytes = b"", **kwargs: Any) -> int:
    """POST without proxies from the environment, closing everything, returning the status."""
    with requests.Session() as session:
        session.trust_env = False
        with session.post(url, data=body, **kwargs) as response:
            return response.status_code


# --- verifier ---------------------------------------------------------------------------


def test_sign_reproduces_the_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify_accepts_the_published_vector_with_any_header_case() -> None:
    headers = {name.title(): value for name, value in vector_headers().items()}
    assert "Webhook-Signature" in headers

    payload = verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)

    assert payload == {"test": 2432232314}


def test_a_flipped_byte_in_the_body_is_rejected() -> None:
    tampered = VECTOR_BODY.replace(b"4", b"5", 1)
    assert tampered != VECTOR_BODY

    with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
        verify(VECTOR_SECRET, vector_headers(), tampered, now=VECTOR_TIMESTAMP)


def test_a_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching v1 signature"):
        verify(OTHER_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-301, False), (-300, True), (300, True), (301, False)],
    ids=["too-new", "new-edge", "old-edge", "stale"],
)
def test_the_timestamp_must_be_within_the_tolerance_both_ways(offset: int, accepted: bool) -> None:
    now = VECTOR_TIMESTAMP + offset
    if accepted:
        verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=now)
    else:
        with pytest.raises(WebhookVerificationError, match=r"too (old|new)"):
            verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=now)


@pytest.mark.parametrize("raw", ["1614265330.0", "abc", "-1614265330", ""])
def test_a_timestamp_that_is_not_integer_seconds_is_rejected(raw: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(
            VECTOR_SECRET, vector_headers(webhook_timestamp=raw), VECTOR_BODY, now=VECTOR_TIMESTAMP
        )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_rejected(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]

    with pytest.raises(WebhookVerificationError, match=rf"missing header.*{missing}"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_one_matching_signature_among_several_is_enough() -> None:
    foreign = sign(OTHER_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    same_digest_other_version = "v2," + VECTOR_SIGNATURE.removeprefix("v1,")
    header = " ".join([foreign, "v1a,bm90LWVkMjU1MTk=", "v1,!!not-base64!!", VECTOR_SIGNATURE])

    payload = verify(
        VECTOR_SECRET, vector_headers(webhook_signature=header), VECTOR_BODY, now=VECTOR_TIMESTAMP
    )
    assert payload == {"test": 2432232314}

    # The same digest under another version label must not count: only v1 is HMAC-SHA256.
    with pytest.raises(WebhookVerificationError):
        verify(
            VECTOR_SECRET,
            vector_headers(webhook_signature=f"{foreign} {same_digest_other_version}"),
            VECTOR_BODY,
            now=VECTOR_TIMESTAMP,
        )


# --- receiver ---------------------------------------------------------------------------


def test_the_receiver_records_method_path_headers_and_body() -> None:
    body = json.dumps({"event": "case.created"}).encode()
    with WebhookReceiver() as rx:
        status = post(rx.url("/hook?attempt=1"), body, headers={"Webhook-Id": "msg_1"})
        with requests.Session() as session:
            session.trust_env = False
            session.get(rx.url("/elsewhere")).close()

        first, second = rx.wait_for(2)

    assert status == 200
    assert (first.method, first.path, first.body) == ("POST", "/hook?attempt=1", body)
    assert first.headers["webhook-id"] == "msg_1"
    assert first.headers["content-length"] == str(len(body))
    assert (second.method, second.path, second.body) == ("GET", "/elsewhere", b"")
    assert first.at <= second.at


def test_the_receiver_follows_its_script_then_answers_200() -> None:
    with WebhookReceiver() as rx:
        rx.respond_with(500, 200)
        rx.respond_with(410, path="/gone")

        statuses = [post(rx.url()) for _ in range(3)]
        gone = [post(rx.url("/gone")), post(rx.url("/gone"))]

        assert len(rx.received) == 5
        rx.clear()
        assert rx.received == []

    assert statuses == [500, 200, 200]
    assert gone == [410, 200]


def test_a_slow_answer_times_the_client_out_but_is_recorded() -> None:
    with WebhookReceiver() as rx:
        rx.respond_with(Slow(5.0))

        with pytest.raises(requests.Timeout):
            post(rx.url(), b"{}", timeout=0.2)

        (request,) = rx.wait_for(1)
    # Leaving the block cut the 5 s wait short (the whole file stays well under 3 s).
    assert request.body == b"{}"


def test_a_dropped_connection_is_a_connection_error_but_is_recorded() -> None:
    with WebhookReceiver() as rx:
        rx.respond_with(Drop())

        with pytest.raises(requests.ConnectionError):
            post(rx.url(), b"{}", timeout=5)

        assert [r.method for r in rx.received] == ["POST"]
        assert post(rx.url(), timeout=5) == 200


def test_wait_for_fails_the_test_when_too_few_requests_arrive() -> None:
    with WebhookReceiver() as rx:
        post(rx.url())

        with pytest.raises(AssertionError, match=r"at least 2 request.*1 arrived"):
            rx.wait_for(2, timeout=0.1)
