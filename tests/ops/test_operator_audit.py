"""Operators' command-line changes are in the hash-chained audit trail: who, why, what.

The review's finding: ``referrals erase``, ``keys rotate/rewrap/retire``, ``seed`` and
``db harden`` wrote nothing to the trail.  Each now records one event through the one
recorder, with the operator (the OS account the process runs as, as the kernel reports it;
or a name claimed with ``--actor``, recorded unverified beside that account) and a reason
(a code or ticket reference).  A change the trail cannot record is not made.  The real
command, against a real instance, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from referrals.auth.operator import CLI_ISSUER, os_account
from referrals.crypto.keyring import KeyringFile
from referrals.db.models import AuditEvent
from tests.api.helpers import REFERRALS, referral_body
from tests.ops.cli import invoke
from tests.services.test_key_rotation import Deployment, open_deployment
from tests.support.databases import postgres_database

TICKET = "CHG-1042"


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with open_deployment(request.param, tmp_path) as deployment:
        yield deployment


def events(deployment: Deployment, action: str) -> list[dict[str, Any]]:
    """What an auditor reads through the API: the trail's events with this action."""
    client = deployment.app().test_client()
    response = client.get(
        "/api/v1/audit/events", query_string={"action": action}, headers=deployment.token("auditor")
    )
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert isinstance(items, list)
    return items


def by_operator(event: dict[str, Any]) -> tuple[Any, ...]:
    actor = event["actor"]
    return (
        actor["issuer"],
        actor["subject"],
        actor["verified"],
        actor["client_id"],
        event["outcome"],
        event.get("reason"),
    )


ME = os_account()
VERIFIED = (CLI_ISSUER, ME, True, f"os:{ME}", "allowed", TICKET)


def test_key_jobs_record_the_operator_and_the_reason(deployment: Deployment) -> None:
    assert events(deployment, "keys:rotate") == []
    deployment.ok("keys", "rotate", "--reason", TICKET)
    deployment.ok("keys", "rewrap", "--reason", TICKET)
    deployment.ok("keys", "retire", "kek-1", "--reason", TICKET)
    for action in ("keys:rotate", "keys:rewrap", "keys:retire"):
        (event,) = events(deployment, action)
        assert by_operator(event) == VERIFIED, action
    assert events(deployment, "keys:retire")[0]["target_id"] == "kek-1"
    # The events are sealed into the chain like any other.
    deployment.ok("audit", "seal")
    assert deployment.ok("audit", "verify").splitlines()[-1] == "ok"


def test_a_key_job_needs_a_reason_and_never_free_text(deployment: Deployment) -> None:
    before = KeyringFile(deployment.keyring_file).load().current
    missing = deployment.cli("keys", "rotate")
    assert missing.exit_code == 2
    assert "Missing option '--reason'" in missing.output
    prose = deployment.cli("keys", "rotate", "--reason", "Kim Exempelsson asked us to")
    assert prose.exit_code == 2
    assert "never free text" in prose.output
    assert KeyringFile(deployment.keyring_file).load().current == before
    assert events(deployment, "keys:rotate") == []


def test_a_claimed_actor_is_recorded_unverified_beside_the_os_account(
    deployment: Deployment,
) -> None:
    deployment.ok("keys", "rotate", "--reason", TICKET, "--actor", "alice.admin")
    (event,) = events(deployment, "keys:rotate")
    assert by_operator(event) == (CLI_ISSUER, "alice.admin", False, f"os:{ME}", "allowed", TICKET)


def test_a_refused_job_is_recorded_as_refused(deployment: Deployment) -> None:
    client = deployment.app().test_client()
    created = client.post(
        REFERRALS,
        json=referral_body(submit=True),
        headers=deployment.token("youth_worker", "ungdomsjouren"),
    )
    assert created.status_code == 201
    deployment.ok("keys", "rotate", "--reason", TICKET)
    # kek-1 still wraps the referral's data key: retiring it is refused, and recorded.
    assert "still wraps 1 data keys" in deployment.refused(
        "keys", "retire", "kek-1", "--reason", TICKET
    )
    (event,) = events(deployment, "keys:retire")
    assert (event["outcome"], event["http_status"], event["target_id"]) == ("error", 409, "kek-1")


def test_erase_is_in_the_trail_and_in_the_referrals_access_log(deployment: Deployment) -> None:
    client = deployment.app().test_client()
    created = client.post(
        REFERRALS,
        json=referral_body(submit=True),
        headers=deployment.token("youth_worker", "ungdomsjouren"),
    )
    referral_id = created.get_json()["id"]
    deployment.ok("erase", referral_id, "--reason", "data_subject_request", "--actor", "dpo")
    (event,) = events(deployment, "referral:erase")
    assert by_operator(event) == (
        CLI_ISSUER,
        "dpo",
        False,
        f"os:{ME}",
        "allowed",
        "data_subject_request",
    )
    log = client.get(
        f"{REFERRALS}/{referral_id}/access-log", headers=deployment.token("auditor")
    ).get_json()["items"]
    assert "referral:erase" in [e["action"] for e in log]
    # A second erase is refused, and the refusal recorded.
    deployment.refused("erase", referral_id, "--reason", "data_subject_request")
    outcomes = [e["outcome"] for e in events(deployment, "referral:erase")]
    assert sorted(outcomes) == ["allowed", "error"]


def test_seeding_is_recorded_and_an_own_seed_file_needs_a_reason(
    deployment: Deployment, tmp_path: Path
) -> None:
    # open_deployment ran `seed demo` without a reason: recorded, reason absent.
    (demo,) = events(deployment, "seed:apply")
    assert by_operator(demo)[:5] == VERIFIED[:5]
    assert (demo["target_id"], demo.get("reason")) == ("demo", None)
    document = tmp_path / "own.json"
    document.write_text(json.dumps({"units": [], "rules": [{"position": 10, "unit": "intake"}]}))
    missing = deployment.cli("seed", "file", str(document))
    assert missing.exit_code == 2
    deployment.ok("seed", "file", str(document), "--reason", TICKET)
    assert len(events(deployment, "seed:apply")) == 2


def test_db_upgrade_is_recorded(deployment: Deployment) -> None:
    (event,) = events(deployment, "db:upgrade")
    assert by_operator(event)[:5] == VERIFIED[:5]


def test_a_change_the_trail_cannot_record_is_not_made(tmp_path: Path) -> None:
    """SQLite: a trigger refuses new audit events; the key rotation must not happen."""
    with open_deployment("sqlite", tmp_path) as deployment:
        engine = create_engine(deployment.url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END"
                )
            )
        engine.dispose()
        before = KeyringFile(deployment.keyring_file).load().current
        refused = deployment.refused("keys", "rotate", "--reason", TICKET)
        assert "nothing was changed" in refused
        assert KeyringFile(deployment.keyring_file).load().current == before


def test_db_harden_is_recorded_with_the_grants(tmp_path: Path) -> None:
    with postgres_database() as url:
        role = f"referrals_app_{secrets.token_hex(4)}"
        sealer = f"referrals_sealer_{secrets.token_hex(4)}"
        owner = create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            for name in (role, sealer):
                connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        try:
            deployment = Deployment(tmp_path / "instance", url)
            env = {k: v for k, v in deployment.env.items() if v is not None}
            assert invoke(env, "db", "upgrade").exit_code == 0
            roles = ("--app-role", role, "--sealer-role", sealer)
            missing = invoke(env, "db", "harden", *roles)
            assert missing.exit_code == 2
            done = invoke(env, "db", "harden", *roles, "--reason", TICKET)
            assert done.exit_code == 0, done.output
            with owner.connect() as connection:
                rows = connection.execute(
                    select(AuditEvent.action, AuditEvent.target_id, AuditEvent.reason).where(
                        AuditEvent.action == "db:harden"
                    )
                ).all()
            assert [tuple(r) for r in rows] == [("db:harden", role, TICKET)]
        finally:
            with owner.connect() as connection:
                for name in (role, sealer):
                    connection.execute(text(f'DROP OWNED BY "{name}"'))
                    connection.execute(text(f'DROP ROLE "{name}"'))
            owner.dispose()
