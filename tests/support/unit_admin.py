"""Setting a unit's webhook through the admin API, as an operator would."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

API = "/api/v1"
Headers = dict[str, str]


def put_webhook(
    client: FlaskClient,
    admin: Headers,
    unit: str,
    url: str | None,
    *,
    enabled: bool = True,
    rotate: bool = False,
) -> dict[str, Any]:
    """PUT the unit back as it is, with this webhook; returns the answer (200 asserted)."""
    current = client.get(f"{API}/units/{unit}", headers=admin)
    assert current.status_code == 200, current.get_json()
    unit_view = current.get_json()
    body: dict[str, Any] = {
        "name": unit_view["name"],
        "kind": unit_view["kind"],
        "districts": unit_view["districts"],
        "webhook_url": url,
        "webhook_enabled": enabled,
    }
    if rotate:
        body["rotate_webhook_secret"] = True
    answer = client.put(f"{API}/units/{unit}", json=body, headers=admin)
    assert answer.status_code == 200, answer.get_json()
    view = answer.get_json()
    assert isinstance(view, dict)
    return view
