"""Attacks on scope found in review: each once let a caller see what GET would hide."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from referrals.auth import devissuer
from referrals.auth.principal import Role

BODY = {
    "subject": {"name": "Exempel Exempelsson", "district": "norrmalm"},
    "categories": ["drugs"],
    "priority": "normal",
    "legal_basis": "duty_to_report",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_idempotent_replay_is_scoped_like_a_read(client: FlaskClient, instance_path: Path) -> None:
    """Same subject, new role: the replay of an earlier create must not leak the draft."""
    key = devissuer.load_or_create_key(instance_path)

    def token(role: Role, unit: str) -> dict[str, str]:
        minted = devissuer.mint(
            key, role=role, unit=unit, audience="referrals-api", subject="person-42"
        )
        return {**bearer(minted), "Idempotency-Key": "create-1"}

    first = client.post(
        "/api/v1/referrals", json=BODY, headers=token(Role.YOUTH_WORKER, "ungdomsjouren")
    )
    assert first.status_code == 201
    replay = client.post("/api/v1/referrals", json=BODY, headers=token(Role.CASEWORKER, "norrmalm"))
    assert replay.status_code == 404
    assert replay.mimetype == "application/problem+json"
    assert "Exempel" not in replay.get_data(as_text=True)


def test_internal_notes_stay_with_their_unit_after_a_redirect(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    worker = bearer(dev_token("youth_worker", "ungdomsjouren"))
    norrmalm = bearer(dev_token("caseworker", "norrmalm"))
    sodermalm = bearer(dev_token("caseworker", "sodermalm"))
    rid = client.post("/api/v1/referrals", json={**BODY, "submit": True}, headers=worker).json["id"]
    for text, visibility in [("norrmalm internal", "internal"), ("norrmalm shared", "shared")]:
        note = client.post(
            f"/api/v1/referrals/{rid}/notes",
            json={"text": text, "visibility": visibility},
            headers=norrmalm,
        )
        assert note.status_code == 201
    redirected = client.post(
        f"/api/v1/referrals/{rid}/redirect",
        json={"unit": "sodermalm", "reason_code": "wrong_district"},
        headers=norrmalm,
    )
    assert redirected.status_code == 200
    # Other units' note texts are disclosed with the referral (two-phase disclosure).
    accepted = client.post(f"/api/v1/referrals/{rid}/accept", json={}, headers=sodermalm)
    assert accepted.status_code == 200

    seen = client.get(f"/api/v1/referrals/{rid}/notes", headers=sodermalm)
    assert seen.status_code == 200
    assert [n["text"] for n in seen.json["items"]] == ["norrmalm shared"]
    assert client.get(f"/api/v1/referrals/{rid}/notes", headers=norrmalm).status_code == 404
