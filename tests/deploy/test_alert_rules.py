"""The alert rules and Prometheus configuration, checked by Prometheus's own promtool:
they load, and each alert fires on the failure it names and not on a healthy system
(tests/deploy/prometheus/alerts_test.yml). `make test` fetches promtool when it can
(scripts/ensure_promtool.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FETCHED = REPO / ".cache" / "promtool" / "usr" / "bin" / "promtool"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or (str(FETCHED) if FETCHED.exists() else None)
    if found is None:
        pytest.skip("promtool is not installed and scripts/ensure_promtool.sh could not fetch it")
    return found


def run(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_alert_rules_load(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", "deploy/prometheus/alerts.yml")


def test_the_prometheus_configuration_is_valid(promtool: str) -> None:
    # --syntax-only: its rule_files path is where the compose file mounts the rules.
    run(promtool, "check", "config", "--syntax-only", "deploy/prometheus/prometheus.yml")


def test_each_alert_fires_on_its_failure_and_not_when_healthy(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "test", "rules", "tests/deploy/prometheus/alerts_test.yml")


def test_the_quality_row_computes_each_share_per_template(promtool: str, tmp_path: Path) -> None:
    """The dashboard's quality row, evaluated by Prometheus's own engine on counters as
    the processes export them: per template, 3 👍 to 1 👎 is a 75% 👍 share, 1 "not found"
    in 5 answers 20%, 1 rejection in 4 decisions 25%, 2 edits per 4 decisions 50%."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "chatops-dashboard.json").read_text())
    row = next(p for p in dashboard["panels"] if p.get("title") == "Answer quality per template")
    panels = [
        p
        for p in dashboard["panels"]
        if p["type"] != "row" and p["gridPos"]["y"] == row["gridPos"]["y"] + 1
    ]
    expected = {
        "👍 share of rated answers": {"support": 0.75, "sales": 0.5},
        '"Not found" share of answers': {"support": 0.2, "sales": 1.0},
        "Approval rejection rate": {"support": 0.25, "sales": 0.0},
        "Approval edit rate": {"support": 0.5, "sales": 1.0},
    }
    assert sorted(p["title"] for p in panels) == sorted(expected)
    per_minute = {
        # Per minute, for each template: support, then sales.
        'chatops_answer_ratings_total{{template="{t}", rating="up"}}': (3, 1),
        'chatops_answer_ratings_total{{template="{t}", rating="down"}}': (1, 1),
        'chatops_answers_total{{template="{t}", outcome="answered"}}': (4, 0),
        'chatops_answers_total{{template="{t}", outcome="not_found"}}': (1, 2),
        'chatops_approval_decisions_total{{template="{t}", decision="approved"}}': (3, 1),
        'chatops_approval_decisions_total{{template="{t}", decision="rejected"}}': (1, 0),
        'chatops_approval_edits_total{{template="{t}"}}': (2, 1),
    }
    series = [
        {"series": name.format(t=template), "values": f"0+{step}x90"}
        for name, steps in per_minute.items()
        for template, step in zip(("support", "sales"), steps, strict=True)
    ]
    tests = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        # All templates chosen: the variable's "All" value.
                        "expr": panel["targets"][0]["expr"].replace("$template", ".*"),
                        "eval_time": "75m",
                        "exp_samples": [
                            {"labels": f'{{template="{template}"}}', "value": value}
                            for template, value in expected[panel["title"]].items()
                        ],
                    }
                    for panel in panels
                ],
            }
        ],
    }
    path = tmp_path / "quality_test.yml"
    path.write_text(yaml.safe_dump(tests, allow_unicode=True))
    assert "SUCCESS" in run(promtool, "test", "rules", str(path))
