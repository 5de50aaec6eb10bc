"""The destination rule on its own: which endpoints are well formed, which addresses the
production worker may connect to (referrals/webhooks/destinations.py)."""

from __future__ import annotations

import ipaddress

import pytest

from referrals.webhooks.destinations import Destinations, url_problem

PRODUCTION = Destinations(restricted=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/x",
        "https://hooks.example.org:8443/x?a=1",
        "http://127.0.0.1:8080/hook",
        "https://[2001:db8::1]:443/hook",
        "https://xn--sdermalm-n4a.example.se/hook",
        "https://hooks.example.org./x",
    ],
)
def test_well_formed_endpoints(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://h:99999/",
        "https://h:0/",
        "https://h:/",
        "https://h:x/",
        "http://[::1/hook",
        "ftp://hooks.example.org/",
        "https:///nohost",
        "https://user@hooks.example.org/",
        "https://hooks example.org/",
        "https://hooks_example.org/",
        "https://-h.example.org/",
        "https://" + "a" * 64 + ".example.org/",
    ],
)
def test_malformed_endpoints(url: str) -> None:
    assert url_problem(url) is not None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.5",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:5",
        "64:ff9b::7f00:1",
        "2002:a00:5::1",
        "2002:7f00:1::1",
        "2001:db8::1",
    ],
)
def test_production_refuses_internal_addresses(address: str) -> None:
    assert not PRODUCTION.permits(address)
    assert Destinations(restricted=False).permits(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_production_permits_public_addresses(address: str) -> None:
    assert PRODUCTION.permits(address)


def test_the_allow_list_opens_named_networks_only() -> None:
    allowed = Destinations(
        restricted=True,
        allowed=(ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:1::/64")),
    )
    assert allowed.permits("10.20.3.4")
    assert allowed.permits("::ffff:10.20.3.4")
    assert allowed.permits("fd00:1::7")
    assert not allowed.permits("10.21.0.1")
    assert not allowed.permits("127.0.0.1")
    assert not allowed.permits("fd00:2::7")


def test_input_refuses_literals_and_localhost_only_in_production() -> None:
    for url in ("https://localhost/x", "https://api.localhost./x", "https://[::1]/x"):
        assert PRODUCTION.input_problem(url) is not None
        assert Destinations().input_problem(url) is None
    assert PRODUCTION.input_problem("https://intranet.example.org/x") is None
