"""Configuration problems stop a process at start with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.processes import REPO


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_missing_setting_is_named_in_one_line() -> None:
    """Without DATABASE_URL the worker refuses to start and says which setting is missing."""
    result = run_cli("worker", env={"SLACK_SIGNING_SECRET": "s"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_setting_is_named() -> None:
    """A malformed JSON list of fallback providers is reported by name, not as a traceback."""
    result = run_cli(
        "serve",
        env={
            "SLACK_SIGNING_SECRET": "s",
            "DATABASE_URL": "postgresql://nowhere/db",
            "LLM_FALLBACK_PROVIDERS": "[{not json",
        },
    )
    assert result.returncode == 2
    assert "LLM_FALLBACK_PROVIDERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_tool_calling_and_a_tiny_context_are_named() -> None:
    """LLM_TOOL_CALLING takes auto, native or json; LLM_CONTEXT_TOKENS at least 1,024: the
    worker says which setting is wrong instead of starting with it."""
    result = run_cli(
        "worker",
        env={
            "SLACK_SIGNING_SECRET": "s",
            "DATABASE_URL": "postgresql://nowhere/db",
            "LLM_TOOL_CALLING": "sometimes",
            "LLM_CONTEXT_TOKENS": "512",
        },
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LLM_TOOL_CALLING" in lines[0] and "'auto', 'native' or 'json'" in lines[0]
    assert "LLM_CONTEXT_TOKENS" in lines[0] and "1024" in lines[0]
    assert "Traceback" not in result.stderr


def test_unmigrated_database_is_reported(database_url: str, postgres_server_url: str) -> None:
    """Starting against a database without the schema says to run `chatops migrate`."""
    from tests.conftest import create_database, drop_database

    empty = create_database(postgres_server_url, prefix="chatops_unmigrated")
    try:
        result = run_cli("worker", env={"SLACK_SIGNING_SECRET": "s", "DATABASE_URL": empty})
    finally:
        drop_database(postgres_server_url, empty)
    assert result.returncode == 2
    assert "chatops migrate" in result.stderr


def test_rejected_bot_token_stops_serve_with_one_line(database_url: str, slack) -> None:  # type: ignore[no-untyped-def]
    """A SLACK_BOT_TOKEN that Slack refuses is reported at start, naming the setting."""
    result = run_cli(
        "serve",
        "--port",
        "0",
        env={
            "SLACK_SIGNING_SECRET": "s",
            "DATABASE_URL": database_url,
            "SLACK_API_URL": slack.api_url,
            "SLACK_BOT_TOKEN": "xoxb-not-a-real-token",
        },
    )
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "invalid_auth" in result.stderr
    assert "Traceback" not in result.stderr
