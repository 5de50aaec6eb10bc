def test_lifecycle_smoke(client, dev_token):
    worker = {"Authorization": f"Bearer {dev_token('youth_worker', 'ungdomsjouren')}"}
    caseworker = {"Authorization": f"Bearer {dev_token('caseworker', 'norrmalm')}"}
    created = client.post(
        "/api/v1/referrals",
        json={
            "subject": {"name": "Testa Testsson", "district": "norrmalm"},
            "categories": ["drugs"],
            "priority": "normal",
            "legal_basis": "duty_to_report",
            "submit": True,
        },
        headers=worker,
    )
    assert created.status_code == 201, created.json
    rid = created.json["id"]
    assert created.json["receiving_unit"] == "norrmalm"
    accepted = client.post(f"/api/v1/referrals/{rid}/accept", json={}, headers=caseworker)
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "accepted"
