"""Scraping the app's /metrics in tests, and what every process kind exports."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from referrals.audit import sealing
from referrals.runtime import Runtime
from referrals.worker import Worker

# Made up, long enough for production's check; never a real deployment's.
TOKEN = "test-metrics-token-0123456789abcdefXYZ"
AUTHORIZATION = {"Authorization": f"Bearer {TOKEN}"}


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics", headers=AUTHORIZATION)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def families(text: str) -> dict[str, str]:
    """Family name -> type, without the ``_created`` companions of counters and
    histograms (prometheus_client's extra series, which no rule reads)."""
    found = {f.name: f.type for f in text_string_to_metric_families(text)}
    return {
        name: kind
        for name, kind in found.items()
        if not (
            name.endswith("_created")
            and found.get(name.removesuffix("_created")) in ("counter", "histogram")
        )
    }


def samples(text: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample called ``name`` whose labels include ``labels``; None if none."""
    found = [
        s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def every_family(app: Flask) -> dict[str, str]:
    """What the app, the worker and the sealer export together, as the quickstart
    serves it from one process: each group made, one refusal counted."""
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    Worker(runtime).sender.close()  # makes the worker's families
    runtime.sealer()  # and the sealer's
    client = app.test_client()
    assert client.get("/api/v1/referrals").status_code == 401  # an audit event
    # A checkpoint, without which its age is not reported.
    with runtime.sealer_database().sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    with runtime.sealer_database().sessions() as session:
        sealing.checkpoint(session, runtime.audit_signing_key, runtime.clock)
    assert client.get("/metrics").status_code == 401  # and the guard's
    return families(scrape(client))
