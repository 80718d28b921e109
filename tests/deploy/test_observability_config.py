"""Alert rules and the Grafana dashboard ask only for series the product exports, and
every alert has its entry in the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from bot.observability.stored_state import (
    QueueState,
    StoredState,
    StoredStateCollector,
)
from core.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\bchatops_[a-z_]+")


def exported_series() -> set[str]:
    """Every sample name the processes can expose, histogram and counter suffixes included."""
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    stored = StoredStateCollector()
    stored.state = StoredState(
        queues=[QueueState("agent", 1, 0, 0, 1.0)],
        approvals_pending={1: 1},
        decision_bucket_counts=[0, 0, 0, 0, 0, 0, 0],
        guardrail_flags={("injection", "requester"): 1},
    )
    registry.register(stored)
    names = {"chatops_llm_circuit_state"}  # the worker's CircuitCollector
    for family in registry.collect():
        names.add(family.name)
        names.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_count", "_sum"))
    assert metrics.registry is registry
    return names


def referenced_series(text: str) -> set[str]:
    # Recording rules are named chatops:...; only chatops_ names are exported series.
    return set(SERIES.findall(text))


def test_alert_rules_use_exported_series() -> None:
    """A typo in an alert's query would make it silently never fire."""
    rules = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    unknown = referenced_series(rules) - exported_series()
    assert not unknown


def test_dashboard_uses_exported_series() -> None:
    """Every panel queries series the product exports."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "chatops-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert exprs
    assert not referenced_series(exprs) - exported_series()


def test_every_alert_links_to_its_runbook_section() -> None:
    """Each alert's runbook annotation points at a heading that exists in docs/RUNBOOK.md."""
    runbook = (REPO / "docs" / "RUNBOOK.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    groups = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        anchor = alert["annotations"]["runbook"].split("#")[1]
        assert anchor in anchors, alert["alert"]


def test_prometheus_scrapes_every_process() -> None:
    """The listener, the workers and the SMTP listener are all scrape targets."""
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"chatops-serve", "chatops-worker", "chatops-smtp"}
