"""The issuer's keys over time: rotation, refetch limits and the provider being down.

The app's HTTP calls to the provider are counted by spying on the real ``requests.get``
in referrals.auth.keys (the call still goes to the real provider).
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
import requests
from joserfc.jwk import KeySet

from tests.auth.conftest import MakeApp
from tests.auth.forgery import access_claims, at_header, bearer, forge, header_of, sign
from tests.auth.problems import assert_invalid_token, assert_problem
from tests.support.idp import RestartableIdP, TestIdP, generate_keys

INBOX = "/api/v1/referrals"
DISCOVERY = "/.well-known/openid-configuration"
IDP_UNAVAILABLE = {
    "type": "about:blank",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "The identity provider cannot be reached.",
}


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """URLs the app fetched from identity providers, in order."""
    calls: list[str] = []
    real_get = requests.get

    def counting_get(url: str, *args: Any, **kwargs: Any) -> requests.Response:
        calls.append(url)
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr("referrals.auth.keys.requests.get", counting_get)
    return calls


def kinds(calls: list[str], idp_issuer: str, jwks_uri: str) -> list[str]:
    names = {idp_issuer + DISCOVERY: "discovery", jwks_uri: "jwks"}
    return [names.get(url, url) for url in calls]


def assert_idp_unavailable(response: Any) -> None:
    assert_problem(response, 503, IDP_UNAVAILABLE)
    assert response.headers["Retry-After"] == "5"


def test_key_rotation_is_picked_up_with_one_refetch(
    restartable_idp: RestartableIdP, make_idp_app: MakeApp, provider_calls: list[str]
) -> None:
    first = restartable_idp.start()
    client = make_idp_app(first.issuer, oidc_jwks_refetch_interval=0).test_client()

    def calls() -> list[str]:
        return kinds(provider_calls, first.issuer, first.jwks_uri)

    old_token = first.token("norrmalm-system")
    assert header_of(old_token)["kid"] == "rsa-1"
    assert client.get(INBOX, headers=bearer(old_token)).status_code == 200
    assert client.get(INBOX, headers=bearer(old_token)).status_code == 200
    assert calls() == ["discovery", "jwks"]  # the second request used the cache

    second = restartable_idp.start(generate_keys(rsa_kid="rsa-2", ec_kid="ec-2"))
    assert (second.issuer, second.jwks_uri) == (first.issuer, first.jwks_uri)
    new_token = second.token("norrmalm-system")
    assert header_of(new_token)["kid"] == "rsa-2"

    assert client.get(INBOX, headers=bearer(new_token)).status_code == 200
    assert calls() == ["discovery", "jwks", "jwks"]
    assert client.get(INBOX, headers=bearer(new_token)).status_code == 200
    assert calls() == ["discovery", "jwks", "jwks"]

    # The old key is gone from the provider: its still-unexpired token no longer works.
    assert_invalid_token(client.get(INBOX, headers=bearer(old_token)))
    assert calls() == ["discovery", "jwks", "jwks", "jwks"]


def test_rotation_with_overlap_accepts_old_and_new_tokens(
    restartable_idp: RestartableIdP, make_idp_app: MakeApp
) -> None:
    first = restartable_idp.start()
    client = make_idp_app(first.issuer, oidc_jwks_refetch_interval=0).test_client()
    old_token = first.token("norrmalm-system")
    assert client.get(INBOX, headers=bearer(old_token)).status_code == 200

    # The provider publishes the new key first (it signs with it) and keeps the old one.
    new_keys = generate_keys(rsa_kid="rsa-2", ec_kid="ec-2")
    second = restartable_idp.start(KeySet([*new_keys.keys, *first.keys.keys]))
    new_token = second.token("norrmalm-system")
    assert header_of(new_token)["kid"] == "rsa-2"

    assert client.get(INBOX, headers=bearer(new_token)).status_code == 200
    assert client.get(INBOX, headers=bearer(old_token)).status_code == 200


@pytest.mark.parametrize(
    ("refetch_interval", "expected_jwks_fetches"),
    [(3600, 1), (0, 20)],
    ids=["rate-limited", "unlimited-contrast"],
)
def test_flood_of_unknown_kids_is_not_amplified(
    make_idp_app: MakeApp,
    oidc_provider: TestIdP,
    provider_calls: list[str],
    refetch_interval: int,
    expected_jwks_fetches: int,
) -> None:
    client = make_idp_app(
        oidc_provider.issuer, oidc_jwks_refetch_interval=refetch_interval
    ).test_client()
    for _ in range(20):
        token = forge(oidc_provider, header=at_header(kid=uuid.uuid4().hex))
        assert_invalid_token(client.get(INBOX, headers=bearer(token)))

    seen = kinds(provider_calls, oidc_provider.issuer, oidc_provider.jwks_uri)
    assert seen == ["discovery"] + ["jwks"] * expected_jwks_fetches
    # Genuine tokens are still served from the cache, without another fetch.
    assert client.get(INBOX, headers=bearer(forge(oidc_provider))).status_code == 200
    assert len(provider_calls) == len(seen)


def closed_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_identity_provider_down_is_503(make_idp_app: MakeApp, oidc_provider: TestIdP) -> None:
    issuer = f"http://127.0.0.1:{closed_loopback_port()}"
    client = make_idp_app(issuer).test_client()
    token = forge(oidc_provider, iss=issuer)
    assert_idp_unavailable(client.get(INBOX, headers=bearer(token)))
    # Checks that need no keys still answer 401: an untrusted issuer, a refused algorithm.
    assert_invalid_token(client.get(INBOX, headers=bearer(forge(oidc_provider))))
    unsigned = sign(at_header(alg="none"), access_claims(issuer), None)
    assert_invalid_token(client.get(INBOX, headers=bearer(unsigned)))


def test_provider_outage_and_recovery(
    restartable_idp: RestartableIdP, make_idp_app: MakeApp, provider_calls: list[str]
) -> None:
    running = restartable_idp.start()
    token = running.token("norrmalm-system")

    def calls() -> list[str]:
        return kinds(provider_calls, running.issuer, running.jwks_uri)

    # Keys expire at once (ttl 0), so this instance asks the provider on every request.
    warm = make_idp_app(running.issuer, oidc_jwks_ttl=0, oidc_jwks_refetch_interval=0)
    spaced = make_idp_app(running.issuer)  # default: retries at most every 30 s
    eager = make_idp_app(running.issuer, oidc_jwks_refetch_interval=0)
    assert warm.test_client().get(INBOX, headers=bearer(token)).status_code == 200

    restartable_idp.stop()
    provider_calls.clear()
    # Keys already fetched stay in use while the provider is down, even past their ttl:
    # an outage must not log everyone out.
    assert warm.test_client().get(INBOX, headers=bearer(token)).status_code == 200
    assert calls() == ["jwks"]
    unknown_kid = forge(running, header=at_header(kid="rsa-9"))
    assert_invalid_token(warm.test_client().get(INBOX, headers=bearer(unknown_kid)))

    # An instance without keys cannot verify anything: 503, not 401 or 500 ...
    provider_calls.clear()
    for _ in range(3):
        assert_idp_unavailable(spaced.test_client().get(INBOX, headers=bearer(token)))
    # ... and it does not hammer the provider: one attempt per refetch interval.
    assert calls() == ["discovery"]
    for _ in range(2):
        assert_idp_unavailable(eager.test_client().get(INBOX, headers=bearer(token)))
    assert calls() == ["discovery"] * 3

    restartable_idp.start(running.keys)
    # Recovery is picked up at the next permitted attempt ...
    assert eager.test_client().get(INBOX, headers=bearer(token)).status_code == 200
    assert calls() == ["discovery"] * 4 + ["jwks"]
    # ... which for the default instance is only after its 30 s interval: still 503, and
    # no request was made.
    assert_idp_unavailable(spaced.test_client().get(INBOX, headers=bearer(token)))
    assert calls() == ["discovery"] * 4 + ["jwks"]


def test_discovery_naming_another_issuer_is_503(
    make_idp_app: MakeApp, oidc_provider: TestIdP
) -> None:
    """A configured issuer that differs from the provider's own (here by a trailing
    slash) is a misconfiguration (OIDC Discovery §4.3): no keys are trusted."""
    issuer = oidc_provider.issuer + "/"
    client = make_idp_app(issuer).test_client()
    assert_idp_unavailable(client.get(INBOX, headers=bearer(forge(oidc_provider, iss=issuer))))
