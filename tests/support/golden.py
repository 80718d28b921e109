"""Running `chatops golden from-feedback` as an operator would: a child process with the
product's settings, its JSONL read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

CLI_TIMEOUT = 120  # seconds: it loads the PII detector before reading anything


def golden_candidates_cli(env: dict[str, str], tenant: str, *extra: str) -> list[dict[str, Any]]:
    """The candidates the CLI prints for `tenant`; fails the test if it exits non-zero."""
    return _golden_cli(env, "from-feedback", tenant, *extra)


def golden_saved_cli(env: dict[str, str], tenant: str, *extra: str) -> list[dict[str, Any]]:
    """The candidates admins made in Slack, as `chatops golden saved` prints them."""
    return _golden_cli(env, "saved", tenant, *extra)


def _golden_cli(env: dict[str, str], action: str, tenant: str, *extra: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "golden", action, "--tenant", tenant, *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
