"""deploy/prometheus/alerts.yaml and deploy/grafana/: every expression reads metrics the
code exports, as their types allow.

``promtool`` cannot be had offline, so ``tests.ops.promql`` takes each expression apart;
the families exported are the real ones, scraped from a running app whose worker and
sealer families exist too (``tests.support.metrics.every_family``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from referrals import create_app
from referrals.config import Settings
from referrals.db import migrate
from tests.ops.promql import problems, selectors
from tests.support.metrics import TOKEN, every_family

DEPLOY = Path(__file__).parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "referrals-dashboard.json"
# Made by Prometheus itself, not by the code.
EXTERNAL = {"up"}
# What the issue asks the rules to watch, and the metric each rule must read for it.
REQUIRED = {
    "ReferralsAuditSealerStalled": "referrals_audit_behind",
    "ReferralsAuditCheckpointTooOld": "referrals_audit_behind",
    "ReferralsWebhookDeadLetters": "referrals_outbox_dead_letters",
    "ReferralsAcuteReferralOverdue": "referrals_overdue_referrals",
    "ReferralsHigh5xxRate": "referrals_http_requests_total",
    "ReferralsNotReady": "referrals_ready",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The families of an app on its own SQLite file (they are the same on every backend),
    with the worker's and the sealer's made too: once for the whole module."""
    instance = tmp_path_factory.mktemp("alert-rules")
    settings = Settings(instance_path=instance, metrics_token=TOKEN)
    app = create_app(settings)
    runtime = app.extensions["referrals"]
    migrate.upgrade(settings.resolved_database_url(instance), vault=runtime.vault)
    try:
        yield every_family(app)
    finally:
        runtime.dispose()


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def test_every_alert_reads_exported_metrics_with_their_types(exported: dict[str, str]) -> None:
    found = {rule["alert"]: problems(rule["expr"], exported, EXTERNAL) for rule in rules()}
    assert {name: p for name, p in found.items() if p} == {}


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for name, metric in REQUIRED.items():
        assert name in by_name, name
        assert metric in {s.name for s in selectors(by_name[name]["expr"])}, name
        assert by_name[name]["labels"]["severity"] in ("warning", "critical")
        assert by_name[name]["annotations"]["summary"]


def test_every_dashboard_panel_reads_exported_metrics(exported: dict[str, str]) -> None:
    found = {
        f"{title}: {expr}": problems(expr, exported, EXTERNAL)
        for title, expr in dashboard_expressions()
    }
    assert {name: p for name, p in found.items() if p} == {}


def test_the_dashboard_shows_every_family(exported: dict[str, str]) -> None:
    read = {s.name for _, expr in dashboard_expressions() for s in selectors(expr)}
    shown = {
        family
        for family, kind in exported.items()
        for name in read
        if name == family or (name.startswith(family) and kind in ("counter", "histogram"))
    }
    assert set(exported) - shown == set()


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("referrals_no_such_metric > 0", "no such metric"),
        ("rate(referrals_ready[5m]) > 0", "a gauge under rate()"),
        ("referrals_http_requests_total > 10", "a counter read without rate"),
        ("sum by (le) (rate(referrals_http_request_duration_seconds_bucket[5m]))", "buckets"),
        ('max by (unit) (referrals_outbox_dead_letter{unit="x"}) > 0', "no such metric"),
    ],
)
def test_the_checker_catches_a_wrong_expression(
    exported: dict[str, str], expr: str, problem: str
) -> None:
    assert any(problem in p for p in problems(expr, exported, EXTERNAL))
