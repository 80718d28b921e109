"""`chatops migrate`, `serve` and `smtp` screen no text for the model, so they start
without importing presidio or what it pulls in (spaCy, transformers, torch): seconds of
start-up each (issue 18). Each is started through the CLI entry, as an operator starts it,
against the session's Postgres, Redis and Slack emulator.

(The worker does import them, after it is ready: tests/bot/queue/test_worker_warmup.py.
The listeners load the at-rest masker in the background once ready too.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.slack_emulator import SlackEmulator
from testbed.stack import free_port, product_env

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "presidio_analyzer",
    "presidio_anonymizer",
    "spacy",
    "transformers",
    "torch",
    "sentence_transformers",
)
START_LIMIT = 120.0  # seconds


@pytest.fixture
def env(
    database_url: str, redis_url: str, queue_namespace: str, slack: SlackEmulator
) -> dict[str, str]:
    return {
        **os.environ,
        **product_env(
            database_url=database_url,
            redis_url=redis_url,
            namespace=queue_namespace,
            slack=slack,
            llm_primary=None,
            llm_fallback=None,
        ),
    }


def test_migrate_imports_nothing_heavy(env: dict[str, str]) -> None:
    """The whole command, run to its end on an up-to-date database (a deploy's usual case)."""
    script = (
        "import json, sys\n"
        "from bot.cli import main\n"
        "code = main(['migrate'])\n"
        f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, []]


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (["serve", "--port"], "serve.ready"),
        (["smtp", "--host", "127.0.0.1", "--port"], "smtp.ready"),
    ],
)
def test_listener_is_ready_before_importing_anything_heavy(
    command: list[str], ready: str, env: dict[str, str]
) -> None:
    """`python -X importtime` prints each import as it completes, on the same unbuffered
    stream as the process's log: every import printed before its ready line was made on
    the way to ready."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "bot.cli", *command, str(free_port())],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    imported: list[str] = []
    started = time.monotonic()
    try:
        for line in process.stdout:
            if ready in line:
                break
            if line.startswith("import time:") and line.count("|") == 2:
                imported.append(line.split("|")[2].strip())
            assert time.monotonic() - started < START_LIMIT, f"chatops {command[0]} never ready"
        else:
            pytest.fail(f"chatops {command[0]} exited before it was ready")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "bot.cli" in imported or "core.settings" in imported  # importtime was on
    assert [m for m in imported if m.split(".")[0] in HEAVY] == []
