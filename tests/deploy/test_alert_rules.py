"""The alert rules and Prometheus configuration, checked by Prometheus's own promtool:
they load, and each alert fires on the failure it names and not on a healthy system
(tests/deploy/prometheus/alerts_test.yml). `make test` fetches promtool when it can
(scripts/ensure_promtool.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
