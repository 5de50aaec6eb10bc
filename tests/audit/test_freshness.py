"""Verification says plainly when the chain is intact but not current: events waiting for
their seal, or sealed events for a checkpoint, longer than allowed.  Readiness shows it
too, without failing (a stalled sealer is the deployment's fault, not the instance's)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from referrals import create_app
from referrals.audit import freshness, sealing
from referrals.audit.freshness import FreshnessLimits
from referrals.config import Settings
from referrals.db.engine import Database
from referrals.runtime import Runtime
from tests.ops.cli import invoke, run
from tests.support.clock import FakeClock

LIMITS = FreshnessLimits(allowed_lag=30.0, checkpoint_interval=60.0)


@pytest.fixture
def auditor(dev_token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token('auditor')}"}


def verify(client: FlaskClient, auditor: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/v1/audit/verify", headers=auditor)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def sealer_state(client: FlaskClient) -> str:
    response = client.get("/readyz")
    assert response.status_code == 200
    return str(response.get_json()["audit_sealer"])


def seal(app: Flask, database: Database) -> None:
    runtime: Runtime = app.extensions["referrals"]
    with database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)


def sign(app: Flask, database: Database) -> None:
    runtime: Runtime = app.extensions["referrals"]
    with database.sessions() as session:
        sealing.checkpoint(session, runtime.audit_signing_key, runtime.clock)


def test_a_stalled_sealer_is_reported_by_verify_and_readiness(
    app: Flask, client: FlaskClient, database: Database, clock: FakeClock, auditor: dict[str, str]
) -> None:
    first = verify(client, auditor)  # nothing has waited yet
    assert first["status"] == "ok"
    assert first["freshness"]["problems"] == []
    assert sealer_state(client) == "ok"

    clock.advance(seconds=31)  # REFERRALS_AUDIT_SEAL_LAG defaults to 30 s
    behind = verify(client, auditor)
    assert behind["status"] == "behind"
    assert behind["freshness"]["problems"] == ["sealing-behind"]
    assert behind["freshness"]["oldest_pending_age"] == pytest.approx(31)
    assert sealer_state(client) == "behind"

    seal(app, database)
    clock.advance(seconds=91)  # sealed but unsigned past the interval (60 s) and the lag
    seal(app, database)
    overdue = verify(client, auditor)
    assert overdue["status"] == "behind"
    assert overdue["freshness"]["problems"] == ["checkpoint-overdue"]
    assert sealer_state(client) == "behind"

    seal(app, database)
    sign(app, database)
    current = verify(client, auditor)
    assert current["status"] == "ok", current
    assert current["freshness"]["newest_checkpoint"] is not None
    assert sealer_state(client) == "ok"


def test_a_quiet_system_with_an_old_checkpoint_is_current() -> None:
    now = FakeClock()()
    backlog = sealing.Backlog(
        oldest_pending=None,
        unsigned=0,
        oldest_unsigned=None,
        newest_checkpoint=now - timedelta(days=30),
    )
    assert freshness.judge(backlog, now, LIMITS).ok


@pytest.mark.parametrize(
    ("pending_age", "unsigned_age", "problems"),
    [
        (30, None, ()),
        (31, None, (freshness.SEALING_BEHIND,)),
        (None, 90, ()),
        (None, 91, (freshness.CHECKPOINT_OVERDUE,)),
        (31, 91, (freshness.SEALING_BEHIND, freshness.CHECKPOINT_OVERDUE)),
    ],
)
def test_the_limits(
    pending_age: int | None, unsigned_age: int | None, problems: tuple[str, ...]
) -> None:
    now = FakeClock()()
    backlog = sealing.Backlog(
        oldest_pending=None if pending_age is None else now - timedelta(seconds=pending_age),
        unsigned=0 if unsigned_age is None else 5,
        oldest_unsigned=None if unsigned_age is None else now - timedelta(seconds=unsigned_age),
        newest_checkpoint=None,
    )
    assert freshness.judge(backlog, now, LIMITS).problems == problems


def test_cli_verify_exits_non_zero_when_behind(tmp_path: Path) -> None:
    env = {
        "REFERRALS_INSTANCE_PATH": str(tmp_path / "instance"),
        "REFERRALS_AUDIT_SEAL_LAG": "0.001",
    }
    run(env, "db", "upgrade")
    token = run(env, "dev-token", "--role", "auditor").strip()
    app = create_app(Settings(instance_path=tmp_path / "instance"))
    listed = app.test_client().get(
        "/api/v1/audit/events", headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 200  # one audited request: one pending event

    behind = invoke(env, "audit", "verify")
    assert behind.exit_code == 1
    assert "behind: the oldest unsealed event has waited" in behind.output

    run(env, "audit", "seal")  # seals and signs
    assert run(env, "audit", "verify").strip().endswith("ok")
