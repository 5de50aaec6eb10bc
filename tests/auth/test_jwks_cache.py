"""The JWKS cache: TTL, refetch on an unknown kid, outages, and transport checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from joserfc.jwk import RSAKey

from referrals.auth.keys import DiscoveredKeySource, KeysUnavailable, jwks_uri_allowed
from tests.support.jwks_server import JwksServer, jwks_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def public_jwk(kid: str) -> dict[str, object]:
    key = RSAKey.generate_key(2048, private=True)
    return dict(key.as_dict(private=False, kid=kid, alg="RS256"))


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with jwks_server() as state:
        state.jwks = {"keys": [public_jwk("k1")]}
        yield state


def source(server: JwksServer, clock: Clock, issuer: str | None = None) -> DiscoveredKeySource:
    return DiscoveredKeySource(
        issuer or server.issuer, ttl=300, refetch_interval=30, timeout=2, clock=clock
    )


def test_keys_are_cached_until_the_ttl(server: JwksServer) -> None:
    clock = Clock()
    keys = source(server, clock)
    assert keys.find("k1") is not None
    assert keys.find("k1") is not None
    assert server.requests == ["/.well-known/openid-configuration", "/jwks"]
    clock.now += 301
    assert keys.find("k1") is not None
    assert server.requests[-1] == "/jwks"
    assert len(server.requests) == 3


def test_unknown_kids_refetch_at_most_once_per_interval(server: JwksServer) -> None:
    clock = Clock()
    keys = source(server, clock)
    keys.find("k1")
    for n in range(20):
        assert keys.find(f"made-up-{n}") is None
    assert len(server.requests) == 2  # the unknown kids arrived within the interval
    clock.now += 31
    server.jwks = {"keys": [public_jwk("k2")]}
    assert keys.find("k2") is not None  # the provider rotated: one refetch finds it
    assert keys.find("k1") is None  # and the retired key is gone


def test_an_outage_keeps_the_cached_keys_and_spaces_out_retries(server: JwksServer) -> None:
    clock = Clock()
    keys = source(server, clock)
    keys.find("k1")
    server.status = 503
    clock.now += 301  # the cache expired during the outage
    for _ in range(10):
        assert keys.find("k1") is not None
    assert len(server.requests) == 3  # one failed attempt, then quiet


def test_without_any_keys_an_outage_fails_fast(server: JwksServer) -> None:
    clock = Clock()
    server.status = 503
    keys = source(server, clock)
    for _ in range(5):
        with pytest.raises(KeysUnavailable):
            keys.find("k1")
    assert len(server.requests) == 1
    server.status = 200
    clock.now += 31
    assert keys.find("k1") is not None


def test_discovery_must_name_the_configured_issuer_exactly(server: JwksServer) -> None:
    with pytest.raises(KeysUnavailable, match="another issuer"):
        source(server, Clock(), issuer=server.issuer + "/").find("k1")


@pytest.mark.parametrize(
    ("issuer", "jwks_uri", "allowed"),
    [
        ("https://idp.example.org", "https://idp.example.org/jwks", True),
        ("https://idp.example.org", "http://idp.example.org/jwks", False),
        ("https://idp.example.org", "file:///etc/passwd", False),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/jwks", True),
        ("http://127.0.0.1:5000", "ftp://127.0.0.1/jwks", False),
    ],
)
def test_an_https_issuer_never_takes_keys_over_plain_http(
    issuer: str, jwks_uri: str, allowed: bool
) -> None:
    assert jwks_uri_allowed(issuer, jwks_uri) is allowed


def test_a_jwks_uri_with_another_scheme_is_refused(server: JwksServer) -> None:
    server.jwks_uri = "file:///etc/passwd"
    with pytest.raises(KeysUnavailable, match="jwks_uri"):
        source(server, Clock()).find("k1")


def test_private_keys_in_a_jwks_are_never_used(server: JwksServer) -> None:
    leaked = RSAKey.generate_key(2048, private=True)
    server.jwks = {"keys": [dict(leaked.as_dict(private=True, kid="k1", alg="RS256"))]}
    assert source(server, Clock()).find("k1") is None
