"""One bad webhook endpoint must not stop deliveries to every unit (issue: trust under attack).

The review set ``https://h:99999/`` through the admin API: it was accepted, the sender
raised ``ValueError`` outside its ``try``, the worker's round aborted, the message was never
dead-lettered (its attempts went past the maximum) and the other units' messages in the
batch were never sent.  Here: such URLs are refused on input (admin API and seed files),
and a bad row that is in the database anyway (planted, as by an older version) fails alone,
is counted, and dead-letters at the maximum while the other units are served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from referrals.config import Settings
from referrals.runtime import Runtime
from referrals.services import seeding
from referrals.services.vault import webhook_secret_context
from referrals.worker import Worker
from tests.api.helpers import API, NORRMALM, SODERMALM, Actors, create
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import WebhookReceiver
from tests.webhooks.conftest import Headers

MAX_ATTEMPTS = 3
UNITS = f"{API}/units"
DELIVERIES = f"{API}/admin/deliveries"

BAD_URLS = [
    "https://hooks.example.org:99999/",
    "https://hooks.example.org:65536/x",
    "https://hooks.example.org:0/x",
    "https://hooks.example.org:/x",
    "https://user:password@hooks.example.org/x",
    "https://hooks_example.org/x",
    "https://-hooks.example.org/x",
]


@pytest.fixture
def settings(instance_path: Path) -> Settings:
    return Settings(
        instance_path=instance_path,
        webhook_timeout=1.0,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_backoff_base=10.0,
        webhook_backoff_cap=60.0,
    )


def unit_body(client: FlaskClient, admin: Headers, unit: str, url: str) -> dict[str, Any]:
    view = client.get(f"{UNITS}/{unit}", headers=admin).get_json()
    body = {key: view[key] for key in ("name", "kind", "districts")}
    return body | {"webhook_url": url, "webhook_enabled": True}


def rows(db_connection: Connection) -> dict[str, tuple[str, int, str | None]]:
    query = text("SELECT unit_id, state, attempts, last_error FROM outbox")
    return {u: (s, a, e) for u, s, a, e in db_connection.execute(query)}


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_admin_api_refuses_an_endpoint_the_worker_could_not_send_to(
    client: FlaskClient, admin: Headers, db_connection: Connection, url: str
) -> None:
    before = db_connection.execute(text("SELECT webhook_url FROM units WHERE id = 'norrmalm'"))
    response = client.put(
        f"{UNITS}/{NORRMALM}", json=unit_body(client, admin, NORRMALM, url), headers=admin
    )
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert problem["errors"][0]["field"] == "webhook_url", problem
    after = db_connection.execute(text("SELECT webhook_url FROM units WHERE id = 'norrmalm'"))
    assert after.all() == before.all()


def test_a_seed_file_with_an_impossible_port_is_refused(tmp_path: Path) -> None:
    """Through the CLI, as an operator loads an organisation's own seed file."""
    document = seeding.packaged("demo")
    document["units"][1]["webhook_url"] = "https://h:99999/"
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(document))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFERRALS_", "PG"))}
    env["REFERRALS_ENV"] = "development"
    env["REFERRALS_INSTANCE_PATH"] = str(tmp_path / "instance")
    cli = [sys.executable, "-m", "referrals.cli"]
    upgrade = subprocess.run([*cli, "db", "upgrade"], env=env, capture_output=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr
    done = subprocess.run(
        [*cli, "seed", "file", str(path), "--reason", "CHG-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    assert "webhook_url" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("planted", ["https://h:99999/", "http://[::1/hook", "https://h:x/"])
def test_a_bad_endpoint_in_the_database_fails_alone_and_dead_letters_at_the_maximum(
    client: FlaskClient,
    actors: Actors,
    admin: Headers,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
    clock: FakeClock,
    planted: str,
) -> None:
    set_webhook(NORRMALM, receiver.url())
    set_webhook(SODERMALM, receiver.url("/sodermalm"))
    # What an older version let in, or a hand-edited row: the API no longer accepts it.
    db_connection.execute(
        text("UPDATE units SET webhook_url = :url WHERE id = :unit"),
        {"url": planted, "unit": SODERMALM},
    )
    create(client, actors.worker, submit=True, subject={"district": SODERMALM})
    create(client, actors.worker, submit=True)

    first = worker.run_round()
    assert (first.claimed, first.delivered, first.failed, first.dead) == (2, 1, 1, 0)
    assert [r.path for r in receiver.received] == ["/hook"]
    assert rows(db_connection)[SODERMALM][:2] == ("pending", 1)

    for attempt in range(2, MAX_ATTEMPTS + 1):
        clock.advance(seconds=61)
        result = worker.run_round()
        assert result.claimed == 1, attempt
    assert (result.failed, result.dead) == (0, 1)
    state, attempts, error = rows(db_connection)[SODERMALM]
    assert (state, attempts) == ("dead", MAX_ATTEMPTS)
    assert error in ("invalid endpoint", "delivery failed")
    clock.advance(hours=1)
    assert worker.run_round().claimed == 0, "a dead message was claimed again"


def test_an_attempt_that_raises_fails_alone(
    app: Flask,
    client: FlaskClient,
    actors: Actors,
    worker: Worker,
    receiver: WebhookReceiver,
    set_webhook: Callable[..., str],
    db_connection: Connection,
) -> None:
    """A secret that opens but is no signing key (a hand-edited row): signing raises
    inside the attempt.  That message fails; the other unit's is still sent."""
    set_webhook(NORRMALM, receiver.url())
    set_webhook(SODERMALM, receiver.url("/sodermalm"))
    runtime: Runtime = app.extensions["referrals"]
    blob, kek_id = runtime.vault.seal_secret(webhook_secret_context(SODERMALM), "whsec_%%%")
    db_connection.execute(
        text("UPDATE units SET webhook_secret = :blob, webhook_secret_kek_id = :kek WHERE id = :u"),
        {"blob": blob, "kek": kek_id, "u": SODERMALM},
    )
    create(client, actors.worker, submit=True, subject={"district": SODERMALM})
    create(client, actors.worker, submit=True)

    result = worker.run_round()
    assert (result.claimed, result.delivered, result.failed) == (2, 1, 1)
    assert [r.path for r in receiver.received] == ["/hook"]
    assert rows(db_connection)[SODERMALM] == ("pending", 1, "delivery failed")
