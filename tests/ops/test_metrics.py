"""GET /metrics: every family's name and type, what guards it, and what it counts.

The app under test is the ordinary one (SQLite and PostgreSQL) with a metrics token;
values are read back through the real exposition, parsed by prometheus_client's parser.
"""

from __future__ import annotations

import hmac
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from referrals import create_app
from referrals.audit.freshness import FreshnessLimits
from referrals.audit.sealer import Round
from referrals.auth.principal import Role
from referrals.cli.common import serve_metrics
from referrals.config import ConfigError, Environment, Settings
from referrals.db.engine import Database, connect
from referrals.db.models import AuditEvent, OutboxMessage
from referrals.domain.retention import RETAINED_STATUSES, RetentionPolicy
from referrals.metrics import access, exposition
from referrals.metrics.database import DatabaseCollector
from referrals.metrics.families import Metrics
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import REFERRALS, Actors, bearer, create
from tests.support.clock import FakeClock
from tests.support.metrics import (
    AUTHORIZATION,
    TOKEN,
    every_family,
    families,
    samples,
    scrape,
    value,
)
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import WebhookReceiver

# Every family the three process kinds export, and its type.  A new metric is added
# here on purpose (and to README's list), never by accident.
EXPECTED = {
    "referrals_http_requests": "counter",
    "referrals_http_request_duration_seconds": "histogram",
    "referrals_jwks_refresh_failures": "counter",
    "referrals_metrics_refusals": "counter",
    "referrals_ready": "gauge",
    "referrals_audit_events_pending": "gauge",
    "referrals_audit_seal_lag_seconds": "gauge",
    "referrals_audit_unsigned_events": "gauge",
    "referrals_audit_unsigned_age_seconds": "gauge",
    "referrals_audit_checkpoint_age_seconds": "gauge",
    "referrals_audit_behind": "gauge",
    "referrals_outbox_messages": "gauge",
    "referrals_outbox_dead_letters": "gauge",
    "referrals_outbox_oldest_pending_age_seconds": "gauge",
    "referrals_overdue_referrals": "gauge",
    "referrals_retention_backlog": "gauge",
    "referrals_legal_holds": "gauge",
    "referrals_worker_rounds": "counter",
    "referrals_worker_last_round_timestamp_seconds": "gauge",
    "referrals_webhook_deliveries": "counter",
    "referrals_webhook_delivery_latency_seconds": "histogram",
    "referrals_escalations": "counter",
    "referrals_sealer_rounds": "counter",
    "referrals_sealer_last_round_timestamp_seconds": "gauge",
    "referrals_audit_events_sealed": "counter",
    "referrals_audit_checkpoints_signed": "counter",
}


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(instance_path=instance_path, metrics_token=TOKEN)


@pytest.fixture
def actors(dev_token: Callable[..., str]) -> Actors:
    return Actors(dev_token)


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


def audit_rows(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


# --- names and types ----------------------------------------------------------------


def test_every_family_has_the_documented_name_and_type(app: Flask) -> None:
    assert every_family(app) == EXPECTED


def test_the_exposition_is_prometheus_text_and_never_cached(client: FlaskClient) -> None:
    response = client.get("/metrics", headers=AUTHORIZATION)
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"


# --- protection -----------------------------------------------------------------------


def refusals(client: FlaskClient, reason: str) -> float:
    return value(scrape(client), "referrals_metrics_refusals_total", reason=reason) or 0.0


@pytest.mark.parametrize(
    ("headers", "query", "reason"),
    [
        ({}, {}, "missing"),
        ({"Authorization": "Bearer"}, {}, "missing"),
        ({"Authorization": f"Basic {TOKEN}"}, {}, "missing"),
        ({"Authorization": TOKEN}, {}, "missing"),
        ({}, {"token": TOKEN}, "missing"),  # never from a URL
        ({"Authorization": "Bearer wrong-token-of-the-same-shape-0123456789"}, {}, "invalid"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, {}, "invalid"),  # a prefix
        ({"Authorization": f"Bearer {TOKEN}x"}, {}, "invalid"),  # one character more
        ({"Authorization": f"Bearer {TOKEN.upper()}"}, {}, "invalid"),
    ],
)
def test_a_scrape_without_the_token_is_refused_and_counted(
    client: FlaskClient, headers: dict[str, str], query: dict[str, str], reason: str
) -> None:
    before = refusals(client, reason)
    response = client.get("/metrics", headers=headers, query_string=query)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert response.content_type == "application/problem+json"
    assert "referrals_" not in response.get_data(as_text=True)
    assert refusals(client, reason) == before + 1


def test_the_scheme_is_case_insensitive(client: FlaskClient) -> None:
    # RFC 9110: the auth-scheme is case-insensitive; the token itself is not.
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_without_a_configured_token_there_are_no_metrics(
    instance_path: Path, database: Database, clock: FakeClock
) -> None:
    app = create_app(Settings(instance_path=instance_path), database=database, clock=clock)
    client = app.test_client()
    for headers in ({}, AUTHORIZATION):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"
    refused = runtime_of(app).metrics.guard().refusals.labels("disabled")._value.get()
    assert refused == 2


def test_the_token_is_compared_in_constant_time(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every comparison goes through hmac.compare_digest (a ``==`` would stop at the first
    wrong character, and a scraper could guess the token one character at a time)."""
    calls: list[tuple[bytes, bytes]] = []

    class Spy:
        @staticmethod
        def compare_digest(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return hmac.compare_digest(a, b)

    monkeypatch.setattr(access, "hmac", Spy)
    assert client.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert client.get("/metrics", headers=AUTHORIZATION).status_code == 200
    assert calls == [(b"guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_scrapes_are_not_audited_as_case_access(client: FlaskClient, database: Database) -> None:
    before = audit_rows(database)
    scrape(client)
    client.get("/metrics")
    client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert audit_rows(database) == before


def test_an_access_token_is_no_metrics_token(client: FlaskClient, actors: Actors) -> None:
    assert client.get("/metrics", headers=actors.worker).status_code == 401


# --- what it counts -----------------------------------------------------------------------


def test_requests_are_counted_by_route_template_never_by_path(
    client: FlaskClient, actors: Actors
) -> None:
    referral_id = create(client, actors.worker)["id"]
    assert client.get(f"{REFERRALS}/{referral_id}", headers=actors.worker).status_code == 200
    assert client.open("/healthz", method="BREW").status_code == 405
    assert client.get(f"/nowhere/{referral_id}").status_code == 404
    text = scrape(client)
    assert referral_id not in text
    route = "/api/v1/referrals/<uuid:referral_id>"
    assert value(text, "referrals_http_requests_total", route=route, method="GET") == 1
    assert (
        value(
            text, "referrals_http_request_duration_seconds_count", route=route, status_class="2xx"
        )
        == 1
    )
    assert value(text, "referrals_http_requests_total", route="/api/v1/referrals") == 1
    assert value(text, "referrals_http_requests_total", method="other") == 1
    # The made-up method matched no rule either: both are "(no route)", one "other".
    assert value(text, "referrals_http_requests_total", route="(no route)", method="GET") == 1


def test_audit_backlog_lag_and_checkpoint_age(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    runtime = runtime_of(app)
    assert client.get(REFERRALS).status_code == 401  # a refusal: one audit event
    clock.advance(seconds=100)
    text = scrape(client)
    assert (value(text, "referrals_audit_events_pending") or 0) >= 1
    assert value(text, "referrals_audit_seal_lag_seconds") == pytest.approx(100, abs=1)
    assert value(text, "referrals_audit_behind", problem="sealing-behind") == 1
    assert value(text, "referrals_audit_checkpoint_age_seconds") is None  # none yet

    sealer = runtime.sealer()
    sealer.run_round()
    clock.advance(seconds=61)  # past the checkpoint interval
    assert sealer.run_round().checkpoint is not None
    clock.advance(seconds=40)
    text = scrape(client)
    assert value(text, "referrals_audit_events_pending") == 0
    assert value(text, "referrals_audit_seal_lag_seconds") == 0
    assert value(text, "referrals_audit_behind", problem="sealing-behind") == 0
    assert value(text, "referrals_audit_checkpoint_age_seconds") == pytest.approx(40, abs=1)
    assert value(text, "referrals_ready") == 1


def test_retention_backlog_and_legal_holds(
    client: FlaskClient, actors: Actors, clock: FakeClock, dev_token: Callable[..., str]
) -> None:
    """A draft never submitted is due after REFERRALS_RETENTION_DRAFT_DAYS (30); a hold
    takes its referral out of the backlog and into the holds."""
    officer = bearer(dev_token(Role.PRIVACY_OFFICER))
    kept = create(client, actors.worker)["id"]
    create(client, actors.worker)
    text = scrape(client)
    assert value(text, "referrals_retention_backlog") == 0
    assert value(text, "referrals_legal_holds") == 0
    clock.advance(days=31)
    assert value(scrape(client), "referrals_retention_backlog") == 2
    held = client.put(
        f"{REFERRALS}/{kept}/legal-hold", json={"reason_code": "complaint"}, headers=officer
    )
    assert held.status_code == 200, held.get_json()
    text = scrape(client)
    assert value(text, "referrals_retention_backlog") == 1
    assert value(text, "referrals_legal_holds") == 1


def test_overdue_referrals_by_priority(
    client: FlaskClient, actors: Actors, clock: FakeClock
) -> None:
    create(client, actors.worker, priority="acute", submit=True)
    create(client, actors.worker, priority="urgent", submit=True)
    create(client, actors.worker, priority="acute")  # a draft is due nowhere
    text = scrape(client)
    assert value(text, "referrals_overdue_referrals", priority="acute") == 0
    clock.advance(days=1)
    text = scrape(client)
    assert value(text, "referrals_overdue_referrals", priority="acute") == 1
    assert value(text, "referrals_overdue_referrals", priority="urgent") == 0
    assert value(text, "referrals_overdue_referrals", priority="normal") == 0


def test_outbox_by_state_and_unit_and_dead_letters(
    app: Flask, client: FlaskClient, actors: Actors, database: Database, clock: FakeClock
) -> None:
    create(client, actors.worker, submit=True)  # routed to norrmalm, which has no webhook
    clock.advance(seconds=30)
    text = scrape(client)
    assert value(text, "referrals_outbox_messages", state="pending", unit="norrmalm") == 1
    assert value(text, "referrals_outbox_oldest_pending_age_seconds") == pytest.approx(30, abs=1)

    job = Worker(runtime_of(app))
    try:
        job.run_round()
    finally:
        job.sender.close()
    text = scrape(client)
    assert value(text, "referrals_outbox_messages", state="skipped", unit="norrmalm") == 1
    assert value(text, "referrals_webhook_deliveries_total", result="skipped") == 1
    assert value(text, "referrals_worker_rounds_total", outcome="ok") == 1
    assert value(text, "referrals_outbox_dead_letters", unit="norrmalm") is None

    with database.sessions() as session:
        session.execute(update(OutboxMessage).values(state="dead"))
        session.commit()
    text = scrape(client)
    assert value(text, "referrals_outbox_dead_letters", unit="norrmalm") == 1


def test_the_sealer_loop_counts_its_rounds(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rounds of the real loop (``audit seal --follow``): one the database fails, then
    one that seals; the loop is stopped after it."""
    assert client.get(REFERRALS).status_code == 401  # an audit event to seal
    sealer = runtime_of(app).sealer(interval=0.01)
    sealer.backoff = lambda _streak: 0.0  # type: ignore[method-assign]
    real_round = sealer.run_round
    outcomes = iter([OperationalError("SELECT", {}, Exception("away")), None])

    def scripted() -> Round:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        sealer.stop()
        return real_round()

    monkeypatch.setattr(sealer, "run_round", scripted)
    sealer.run()
    text = scrape(client)
    assert value(text, "referrals_sealer_rounds_total", outcome="failed") == 1
    assert value(text, "referrals_sealer_rounds_total", outcome="ok") == 1
    assert (value(text, "referrals_audit_events_sealed_total") or 0) >= 1
    assert (value(text, "referrals_sealer_last_round_timestamp_seconds") or 0) > time.time() - 60


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unsigned_token(issuer: str) -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}
    claims = {"iss": issuer, "sub": "someone", "aud": "referrals-api", "exp": 4102444800}
    return f"{part(header)}.{part(claims)}.c2lnbmF0dXJl"


def test_jwks_refresh_failures_are_counted(
    instance_path: Path, database: Database, clock: FakeClock
) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}"
    settings = Settings(instance_path=instance_path, metrics_token=TOKEN, oidc_issuer=issuer)
    client = create_app(settings, database=database, clock=clock).test_client()
    answer = client.get(REFERRALS, headers={"Authorization": f"Bearer {_unsigned_token(issuer)}"})
    assert answer.status_code == 503
    assert value(scrape(client), "referrals_jwks_refresh_failures_total") == 1


def test_a_database_that_does_not_answer_is_not_ready_and_no_error(clock: FakeClock) -> None:
    unreachable = connect(f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none")
    try:
        collector = DatabaseCollector(
            unreachable,
            clock,
            FreshnessLimits(30, 60),
            RetentionPolicy({s: 30 for s in RETAINED_STATUSES}),
        )
        found = {s.name: s.value for f in collector.collect() for s in f.samples}
    finally:
        unreachable.dispose()
    assert found == {"referrals_ready": 0}


def test_no_sample_of_the_exposition_is_per_referral(client: FlaskClient, actors: Actors) -> None:
    for _ in range(3):
        create(client, actors.worker, submit=True)
    labels = {name for s in samples(scrape(client)) for name in s.labels}
    assert labels <= {
        "method",
        "route",
        "status_class",
        "le",
        "reason",
        "problem",
        "state",
        "unit",
        "priority",
        "result",
        "outcome",
    }


# --- settings -------------------------------------------------------------------------------


def test_the_token_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "metrics-token"
    secret.write_text(TOKEN + "\n")
    settings = Settings.from_env(
        {"REFERRALS_ENV": "development", "REFERRALS_METRICS_TOKEN_FILE": str(secret)}
    )
    assert settings.resolved_metrics_token() == TOKEN
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    "environ",
    [
        {"REFERRALS_METRICS_TOKEN": "short"},
        {"REFERRALS_METRICS_TOKEN": TOKEN, "REFERRALS_METRICS_TOKEN_FILE": "/dev/null"},
        {"REFERRALS_METRICS_TOKEN_FILE": "/nonexistent/metrics-token"},
        {"REFERRALS_METRICS_TOKEN_FILE": "/dev/null"},
    ],
)
def test_an_unusable_token_stops_the_start(environ: dict[str, str]) -> None:
    # A file that cannot be read, or one set beside the value, stops the settings; a
    # token too short (or empty) stops the app that would serve it.
    with pytest.raises(ConfigError):
        Settings.from_env({"REFERRALS_ENV": "development", **environ}).resolved_metrics_token()


def test_metrics_port_and_multiprocess_folder_settings() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_METRICS_PORT": "9464",
            "REFERRALS_METRICS_HOST": "10.0.0.7",
            "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
        }
    )
    assert (settings.metrics_port, settings.metrics_host) == (9464, "10.0.0.7")
    assert settings.metrics_multiprocess_dir == Path("/run/metrics")
    for wrong in ("0", "70000", "x"):
        with pytest.raises(ConfigError, match="REFERRALS_METRICS_PORT"):
            Settings.from_env({"REFERRALS_ENV": "development", "REFERRALS_METRICS_PORT": wrong})
    with pytest.raises(ConfigError, match="REFERRALS_METRICS_HOST"):
        Settings.from_env({"REFERRALS_ENV": "development", "REFERRALS_METRICS_HOST": " "})
    assert families("") == {}


# --- the worker's and the sealer's metrics server ---------------------------------------------


class _Process:
    """What ``serve_metrics`` reads of a runtime."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.metrics_token = token


def test_production_serves_metrics_off_loopback_only_with_the_token() -> None:
    production = Settings(env=Environment.PRODUCTION, metrics_host="10.0.0.7", metrics_port=9464)
    with pytest.raises(click.ClickException, match="REFERRALS_METRICS_TOKEN"):
        serve_metrics(_Process(production, None), None, None)  # type: ignore[arg-type]


def test_the_metrics_server_listens_on_loopback_by_default() -> None:
    process = _Process(Settings(), None)
    process.metrics.worker()
    server, thread = exposition.serve(process.metrics, Settings().metrics_host, 0, None)
    try:
        assert server.server_address[0] == "127.0.0.1"
        text = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
        assert "referrals_worker_rounds_total" in text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_delivery_latency_is_measured_from_the_change(
    app: Flask, client: FlaskClient, actors: Actors, clock: FakeClock, dev_token: Callable[..., str]
) -> None:
    with WebhookReceiver() as receiver:
        put_webhook(client, bearer(dev_token("admin")), "norrmalm", receiver.url())
        create(client, actors.worker, submit=True)
        clock.advance(seconds=7)  # the worker gets to it seven seconds after the change
        job = Worker(runtime_of(app))
        try:
            assert job.run_round().delivered == 1
        finally:
            job.sender.close()
        receiver.wait_for(1)
    text = scrape(client)
    assert value(text, "referrals_webhook_deliveries_total", result="delivered") == 1
    # Delivered messages are counted by the worker, not by a scrape-time scan of them all.
    assert value(text, "referrals_outbox_messages", state="delivered") is None
    assert value(text, "referrals_webhook_delivery_latency_seconds_count") == 1
    assert value(text, "referrals_webhook_delivery_latency_seconds_sum") == pytest.approx(7)
    assert value(text, "referrals_webhook_delivery_latency_seconds_bucket", le="5.0") == 0
    assert value(text, "referrals_webhook_delivery_latency_seconds_bucket", le="10.0") == 1
