"""`chatops sandbox` started once for the session, and a headless Chromium to use it with.

The sandbox runs as a child process exactly as a developer starts it, pointed at this
session's Postgres (its own database), Redis (database and key namespace of this session)
and the scripted OpenAI emulator, so the model's drafts and tool calls are deterministic.
The browser is Debian's Chromium (`scripts/ensure_chromium.sh` installs it); Playwright
never downloads one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.openai_emulator import OpenAIEmulator
from tests.conftest import create_database, drop_database
from tests.support.stack import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SANDBOX_START_TIMEOUT = 180.0  # seconds; serve, worker and smtp import torch side by side
SANDBOX_STOP_TIMEOUT = 60.0  # seconds; it stops its three children first


@dataclass(frozen=True)
class RunningSandbox:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None  # for tests that stop it themselves

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/state", timeout=2) as response:
            return bool(json.load(response)["ready"])
    except OSError:
        return False


@pytest.fixture(scope="session")
def sandbox_workspace(
    postgres_server_url: str,
    redis_url: str,
    queue_namespace: str,
    llm_primary: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSandbox]:
    """`chatops sandbox` on a free port, ready for people to use."""
    with sandbox_on_its_own_database(
        postgres_server_url,
        redis_url,
        # Its own queue: the session's `stack` worker must not take the sandbox's jobs. Still
        # under the session's prefix, so the session's cleanup removes its keys.
        f"{queue_namespace}-sandbox",
        tmp_path_factory.mktemp("sandbox"),
        {
            "OPENAI_BASE_URL": llm_primary.base_url,
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": "gpt-4o-mini",
            "LLM_FALLBACK_PROVIDERS": "",
            "LLM_TIMEOUT_SECONDS": "5",
            "LLM_MAX_RETRIES": "1",
            "GUARDRAILS_POLICY_CACHE_SECONDS": "0",
            "LLM_TOOL_CALLING": "json",  # the tests script JSON plans
        },
        "--no-sample-knowledge",
    ) as running:
        yield running


@contextmanager
def sandbox_on_its_own_database(
    postgres_server_url: str,
    redis_url: str,
    namespace: str,
    data_dir: Path,
    settings: dict[str, str],
    *args: str,
) -> Iterator[RunningSandbox]:
    """`chatops sandbox ARGS` on a database of its own (dropped afterwards), the session's
    Redis under `namespace`, with these `settings` on top."""
    database_url = create_database(postgres_server_url, prefix="chatops_sandbox")
    env = os.environ | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": namespace,
        "WORKER_THREADS": "2",
        **settings,
    }
    try:
        with started_sandbox(env, data_dir, *args) as running:
            yield running
    finally:
        drop_database(postgres_server_url, database_url)


@contextmanager
def started_sandbox(env: dict[str, str], data_dir: Path, *args: str) -> Iterator[RunningSandbox]:
    """`chatops sandbox ARGS` on a free port with this environment, until it is ready;
    stopped with SIGTERM (so it stops its children) when the block ends."""
    port = free_port()
    log_path = data_dir / "sandbox.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port)),
                *("--data-dir", str(data_dir), *args),
            ],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = RunningSandbox(f"http://127.0.0.1:{port}", log_path, process)
    try:
        deadline = time.monotonic() + SANDBOX_START_TIMEOUT
        while not _ready(running.url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chatops sandbox did not start:\n{running.log_text()[-3000:]}")
            time.sleep(0.5)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SANDBOX_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright, for one test module: Playwright's
    sync API keeps an asyncio loop running in the main thread while it is open, and later
    modules that call asyncio.run() (test_slack_web_api.py) would fail under it."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM} and scripts/ensure_chromium.sh could not "
            "install it (it needs root and apt-get): the sandbox browser tests are skipped"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, sandbox_workspace: RunningSandbox) -> Iterator[Any]:
    """A fresh browser tab on the sandbox page, once the product is ready."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(sandbox_workspace.url)
    tab.wait_for_selector("#status.ready")
    yield tab
    context.close()
