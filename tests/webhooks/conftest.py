"""Fixtures for the webhook delivery tests.

In-process tests (``app`` on both backends) drive the worker by hand, one round at a time,
on the test's FakeClock.  Multi-process tests (PostgreSQL) get a ``Deployment``: a
throw-away database migrated and seeded by the ``referrals`` CLI, an instance folder shared
with the worker subprocesses (so they open the same sealed webhook secrets), and an
in-process app on the same database, with real commits and the real clock, for the setup.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.runtime import Runtime
from referrals.worker import Worker
from tests.api.helpers import Actors, bearer
from tests.support.databases import empty_postgres_database
from tests.support.unit_admin import put_webhook
from tests.support.webhook_receiver import WebhookReceiver

STOP_TIMEOUT = 10.0

Headers = dict[str, str]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture
def admin(dev_token: Callable[..., str]) -> Headers:
    return bearer(dev_token("admin"))


@pytest.fixture
def actors(dev_token: Callable[..., str]) -> Actors:
    return Actors(dev_token)


@pytest.fixture
def worker(app: Flask) -> Iterator[Worker]:
    """The worker of the app under test, run round by round on the test's clock."""
    job = Worker(app.extensions["referrals"])
    yield job
    job.sender.close()


@pytest.fixture
def set_webhook(client: FlaskClient, admin: Headers) -> Callable[..., str]:
    """Point a unit's webhook at ``url`` and return the signing secret issued for it."""

    def configure(unit: str, url: str, *, enabled: bool = True) -> str:
        view = put_webhook(client, admin, unit, url, enabled=enabled)
        secret = view.get("webhook_secret")
        assert isinstance(secret, str), f"no secret issued for {unit}: {view}"
        return secret

    return configure


# --- a PostgreSQL deployment with worker subprocesses ------------------------------------


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Deployment:
    url: str
    instance: Path
    env: dict[str, str]
    logs: Path
    app: Flask
    engine: Engine
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime = self.app.extensions["referrals"]
        assert isinstance(runtime, Runtime)
        return runtime

    def bearer(self, role: Role, unit: str | None = None) -> Headers:
        key = devissuer.load_or_create_key(self.instance)
        return bearer(devissuer.mint(key, role=role, unit=unit, audience="referrals-api"))

    def start_worker(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        """``referrals worker`` with ``REFERRALS_<NAME>`` settings; output in logs/<name>.log.

        ``PGAPPNAME`` names its database connections, so a test can see it connected."""
        env = self.env | {f"REFERRALS_{k.upper()}": v for k, v in settings.items()}
        env["PGAPPNAME"] = name
        log = self.log(name)
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "referrals.cli", "worker"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.workers[name] = process
        return process

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def stop(self, name: str) -> int:
        """SIGTERM (finish the message in hand), SIGKILL if it does not go; the exit code."""
        process = self.workers[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        return process.returncode

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> float:
        """Poll ``check`` until true; fail with the workers' logs if it never is."""
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                logs = "\n".join(f"--- {n}\n{tail(self.log(n))}" for n in self.workers)
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
            for name, process in self.workers.items():
                assert process.poll() is None or process.returncode in (0, -signal.SIGKILL), (
                    f"worker {name} exited {process.returncode}\n{tail(self.log(name))}"
                )
            time.sleep(0.05)
        return time.monotonic() - started


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "referrals.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"referrals {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An empty PostgreSQL database, migrated and seeded with the demo units by the CLI."""
    instance = tmp_path / "instance"
    logs = tmp_path / "logs"
    logs.mkdir()
    with empty_postgres_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REFERRALS_", "PG"))}
        env |= {
            "REFERRALS_ENV": "development",
            "REFERRALS_INSTANCE_PATH": str(instance),
            "REFERRALS_DATABASE_URL": url,
        }
        assert "newest revision" in run_cli(env, "db", "upgrade")
        assert "5 units created" in run_cli(env, "seed", "demo")
        app = create_app(Settings(instance_path=instance, database_url=url))
        engine = create_engine(url)
        deployed = Deployment(url, instance, env, logs, app, engine)
        try:
            yield deployed
        finally:
            for name in list(deployed.workers):
                deployed.stop(name)
            engine.dispose()
            deployed.runtime.database.dispose()
