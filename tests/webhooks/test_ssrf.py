"""SSRF through webhook URLs (issue: trust under attack).

The review set endpoints at ``https://169.254.169.254/…``, ``https://10.0.0.5:6443`` and
``https://localhost:5432`` with an admin token in production, replayed the deliveries, and
read ``HTTP 418`` / ``connection failed`` / ``tls failed`` in ``GET /admin/deliveries``: an
internal port scanner.  Here, with production settings:

- internal endpoints written as addresses (or ``localhost``) are refused on input;
- the worker refuses, on the address a name resolves to when it sends, every loopback,
  link-local, private, multicast, unspecified or reserved destination (IPv4, IPv6 and
  IPv4-mapped IPv6) unless the allow-list names it, and connects to the address it checked;
- the admin listing says only ``refused destination`` or ``delivery failed``.

No test sends a packet anywhere but loopback: a socket-level guard records every
connection attempt and refuses any to a non-loopback address before it is made, so a
destination rule that let one through would fail the test without reaching the network.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from referrals.config import ConfigError, Environment, Settings
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import API, NORRMALM, Actors, create
from tests.support.webhook_receiver import Drop, WebhookReceiver
from tests.webhooks.conftest import Headers

UNITS = f"{API}/units"
DELIVERIES = f"{API}/admin/deliveries"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
REBINDING_NAME = "hooks.rebinding.example.org"


@dataclass
class SocketGuard:
    """Every ``connect`` made through Python sockets while installed: loopback ones go
    ahead, any other is refused before it leaves the machine (and recorded)."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    blocked: list[tuple[str, int]] = field(default_factory=list)

    def to(self, port: int) -> list[tuple[str, int]]:
        return [a for a in self.attempts if a[1] == port]


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> SocketGuard:
    record = SocketGuard()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = str(address[0]), int(address[1])
            record.attempts.append((host, port))
            if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
                record.blocked.append((host, port))
                raise ConnectionRefusedError("the test guard allows loopback only")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return record


def production(app: Flask, **overrides: Any) -> Runtime:
    """The app's runtime with production settings (the rest of the test app unchanged)."""
    runtime: Runtime = app.extensions["referrals"]
    settings = runtime.settings.with_overrides(env=Environment.PRODUCTION, **overrides)
    return dataclasses.replace(runtime, settings=settings)


@pytest.fixture
def production_api(app: Flask) -> Callable[..., None]:
    def serve(**overrides: Any) -> None:
        app.extensions["referrals"] = production(app, **overrides)

    return serve


def plant(db_connection: Connection, unit: str, url: str) -> None:
    """An endpoint the input check would refuse, there anyway (an older version's row, or
    a name that resolved to a public address when it was set)."""
    db_connection.execute(
        text("UPDATE units SET webhook_url = :url WHERE id = :unit"), {"url": url, "unit": unit}
    )


def deliveries(client: FlaskClient, admin: Headers) -> list[dict[str, Any]]:
    response = client.get(DELIVERIES, headers=admin)
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


# --- input ---------------------------------------------------------------------------------


def put_endpoint(client: FlaskClient, admin: Headers, url: str) -> Any:
    view = client.get(f"{UNITS}/{NORRMALM}", headers=admin).get_json()
    body = {key: view[key] for key in ("name", "kind", "districts")} | {"webhook_url": url}
    return client.put(f"{UNITS}/{NORRMALM}", json=body, headers=admin)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5:6443/api",
        "https://localhost:5432/",
        "https://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "https://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.251/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://[fd00::5]/hook",
    ],
)
def test_production_refuses_an_internal_endpoint_on_input(
    client: FlaskClient,
    admin: Headers,
    production_api: Callable[..., None],
    url: str,
) -> None:
    production_api()
    response = put_endpoint(client, admin, url)
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert problem["errors"][0]["field"] == "webhook_url", problem
    assert "refused destination" in problem["errors"][0]["message"]


def test_an_allow_listed_network_and_public_names_are_accepted_in_production(
    client: FlaskClient, admin: Headers, production_api: Callable[..., None]
) -> None:
    production_api(webhook_allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert put_endpoint(client, admin, "https://10.0.0.5:6443/hook").status_code == 200
    # A name is judged when sent, on what it resolves to then.
    assert put_endpoint(client, admin, "https://hooks.example.org/x").status_code == 200
    assert put_endpoint(client, admin, "https://[2001:4860::1]/hook").status_code == 200


# --- sending ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5:6443/api",
        "https://[fe80::1]:{port}/hook",
        "https://224.0.0.1:{port}/hook",
        "https://[64:ff9b::a00:5]/hook",
        "https://[2002:a00:5::1]/hook",
        "http://" + REBINDING_NAME + ":{port}/hook",
    ],
)
def test_the_production_worker_refuses_internal_destinations_without_connecting(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
    guard: SocketGuard,
    resolver: Resolver,
    template: str,
) -> None:
    resolver.answers[REBINDING_NAME] = ["127.0.0.1"]
    set_webhook(NORRMALM, receiver.url())  # development: loopback is fine for the suite
    plant(db_connection, NORRMALM, template.format(port=receiver.port))
    create(client, actors.worker, submit=True)

    worker = Worker(production(app))
    result = worker.run_round()

    assert (result.claimed, result.failed) == (1, 1)
    assert guard.attempts == [], "a connection was attempted"
    assert receiver.received == []
    (item,) = deliveries(client, admin)
    assert item["last_error"] == "refused destination"


def test_the_worker_connects_to_the_address_it_checked(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
    guard: SocketGuard,
    resolver: Resolver,
) -> None:
    """DNS rebinding: the name resolves to an allowed address when checked and to another
    a moment later.  One resolution, and the connection goes to the address checked."""
    resolver.answers[REBINDING_NAME] = ["127.0.0.1", "127.0.0.2", "10.0.0.5"]
    set_webhook(NORRMALM, receiver.url())
    plant(db_connection, NORRMALM, f"http://{REBINDING_NAME}:{receiver.port}/hook")
    create(client, actors.worker, submit=True)

    allowed = (ipaddress.ip_network("127.0.0.1/32"),)
    worker = Worker(production(app, webhook_allowed_networks=allowed))
    assert worker.run_round().delivered == 1

    assert resolver.asked == [REBINDING_NAME]
    assert guard.attempts == [("127.0.0.1", receiver.port)]
    (request,) = receiver.received
    assert request.headers["host"] == f"{REBINDING_NAME}:{receiver.port}"


def test_production_errors_do_not_fingerprint_what_answers(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    guard: SocketGuard,
) -> None:
    """An allow-listed receiver answering 418, then dropping the connection: the listing
    says "delivery failed" both times, never the status or the kind of failure."""
    set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(418, Drop())
    create(client, actors.worker, submit=True)
    create(client, actors.worker, submit=True)

    worker = Worker(production(app, webhook_allowed_networks=(LOOPBACK,)))
    result = worker.run_round()
    assert (result.claimed, result.failed) == (2, 2)
    assert len(receiver.received) == 2
    assert guard.blocked == []
    listing = client.get(DELIVERIES, headers=admin).get_data(as_text=True)
    assert [i["last_error"] for i in deliveries(client, admin)] == ["delivery failed"] * 2
    for detail in ("418", "connection failed", "tls failed", "timeout", "HTTP"):
        # As a word: the listing's random ids and times may hold "418" inside them
        # ("…-4184-…"), which fingerprints nothing.
        assert re.search(rf"\b{detail}\b", listing) is None, detail


def test_development_keeps_the_detail_and_loopback_works(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
) -> None:
    set_webhook(NORRMALM, receiver.url())
    receiver.respond_with(418)
    create(client, actors.worker, submit=True)
    assert worker.run_round().failed == 1
    assert [i["last_error"] for i in deliveries(client, admin)] == ["HTTP 418"]


# --- the setting ---------------------------------------------------------------------------


def test_the_allow_list_is_read_as_cidrs() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "production",
            "REFERRALS_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16, fd00:1::/64,192.0.2.7/32",
        }
    )
    assert settings.webhook_allowed_networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00:1::/64"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    for bad in ("10.0.0.5/8", "intranet", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="REFERRALS_WEBHOOK_ALLOWED_NETWORKS"):
            Settings.from_env(
                {"REFERRALS_ENV": "production", "REFERRALS_WEBHOOK_ALLOWED_NETWORKS": bad}
            )


# --- a resolver the tests control ------------------------------------------------------


@dataclass
class Resolver:
    """``getaddrinfo`` for one made-up name answers from ``answers`` (a new address each
    time it is asked, like a rebinding DNS server); every other name resolves as usual."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in fake.answers:
            fake.asked.append(host)
            address = fake.answers[host].pop(0)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path, webhook_timeout=2.0, webhook_max_attempts=3)
