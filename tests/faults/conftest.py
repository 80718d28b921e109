"""A product of its own for the fault tests: Postgres and Redis they may break, a Slack
emulator, `chatops serve` and `chatops worker` as child processes.

Started once for `tests/faults/`; each test starts from a healthy stack (whatever the
previous test broke is brought back first) and a tenant with an approval channel.
A module may ask for a broken part to stay broken for all its tests (`no_listener`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core.migrate import apply_migrations
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_emulator import SlackEmulator
from testbed.markers import new_marker
from testbed.stack import WORKER_WARM
from tests.conftest import REPO, create_database
from tests.faults.services import OwnRedis, RestartablePostgres
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import free_port, product_env

DB = psycopg.Connection[dict[str, Any]]
APPROVALS = "C0APPROVALS"
APPROVER = "U0APPROVER"

# Bounds short enough for a test to watch the recovery happen in seconds.
FAULT_ENV = {
    "STRANDED_AFTER_SECONDS": "2",
    "SWEEP_INTERVAL_SECONDS": "1",
    "SCHEDULER_TICK_SECONDS": "0.2",
    # A job fails (and is retried) after 2 s without a database, so a test can run a
    # request's retries out during an outage of seconds.
    "DATABASE_CHECKOUT_TIMEOUT_SECONDS": "2",
}


# Seconds a fault test may take, setup included: the package's first test also pays for
# starting its Postgres, Redis and both processes (a minute on a loaded machine).
FAULT_TEST_TIMEOUT = 300
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(FAULT_TEST_TIMEOUT))


@dataclass
class FaultStack:
    postgres: RestartablePostgres
    database_url: str
    redis: OwnRedis
    slack: SlackEmulator
    serve: ChatopsProcess
    worker: ChatopsProcess
    env: dict[str, str]
    events_url: str
    log_dir: Path

    def start_worker(self) -> None:
        self.worker.start(ready_line=WORKER_WARM)

    def start_serve(self) -> None:
        self.serve.start(ready_url=self.events_url.replace("/slack/events", "/healthz"))

    def connect(self) -> DB:
        return psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row)

    def restore(self, *, serve: bool = True) -> None:
        """Bring back whatever a test broke: Postgres, Redis, the processes (`chatops
        serve` only if ``serve``), Slack's faults."""
        self.slack.faults.clear()
        if not self.postgres.answers():
            self.postgres.start()
        if not self.redis.answers():
            self.redis.start()
        wanted = [(self.worker, self.start_worker)]
        if serve:
            wanted.append((self.serve, self.start_serve))
        for process, start in wanted:
            if process.process is None or process.process.poll() is not None:
                start()


@pytest.fixture(scope="package")
def fault_postgres() -> Iterator[RestartablePostgres]:
    # Not under pytest's temporary folder: pytest keeps its root private (0700), and the
    # server runs as an unprivileged user when the tests run as root.
    data_dir = REPO / ".cache" / f"faults-postgres-{new_marker(8)}"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = RestartablePostgres(data_dir)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="package")
def fault_stack(
    fault_postgres: RestartablePostgres,
    llm_primary: OpenAIEmulator,
    llm_fallback: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FaultStack]:
    database_url = create_database(fault_postgres.url, "chatops_faults")
    apply_migrations(database_url)
    own_redis = OwnRedis(tmp_path_factory.mktemp("faults-redis"))
    own_redis.start()
    slack = SlackEmulator()
    slack.start()
    env = (
        product_env(
            database_url=database_url,
            redis_url=own_redis.url,
            namespace="chatops-faults",
            slack=slack,
            llm_primary=llm_primary,
            llm_fallback=llm_fallback,
        )
        | FAULT_ENV
    )
    log_dir = tmp_path_factory.mktemp("faults-logs")
    port = free_port()
    events_url = f"http://127.0.0.1:{port}/slack/events"
    slack.events_url = events_url
    stack = FaultStack(
        postgres=fault_postgres,
        database_url=database_url,
        redis=own_redis,
        slack=slack,
        serve=ChatopsProcess(["serve", "--port", str(port)], env, log_dir / "serve.log"),
        worker=ChatopsProcess(["worker"], env, log_dir / "worker.log"),
        env=env,
        events_url=events_url,
        log_dir=log_dir,
    )
    try:
        stack.start_serve()
        stack.start_worker()
        yield stack
    finally:
        stack.worker.stop()
        stack.serve.stop()
        slack.stop()
        own_redis.stop()


@pytest.fixture
def faults(fault_stack: FaultStack, llm: OpenAIEmulator) -> FaultStack:
    """The fault stack, healthy, with the tenant's approvals in #approvals."""
    fault_stack.restore()
    return _with_tenant(fault_stack)


@pytest.fixture
def worker_only(fault_stack: FaultStack, llm: OpenAIEmulator) -> FaultStack:
    """The fault stack with no listener: `chatops serve` stopped, the worker running."""
    fault_stack.restore(serve=False)
    fault_stack.serve.stop()
    return _with_tenant(fault_stack)


def _with_tenant(fault_stack: FaultStack) -> FaultStack:
    with fault_stack.connect() as db:
        row = wait_for(
            lambda: db.execute(
                "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
                (fault_stack.slack.workspace.team.id,),
            ).fetchone(),
            message="the workspace's installation",
        )
        db.execute(
            """INSERT INTO tenant_settings (tenant_id, approval_channel_id, paused)
               VALUES (%s, %s, false)
               ON CONFLICT (tenant_id) DO UPDATE
                 SET approval_channel_id = EXCLUDED.approval_channel_id, paused = false""",
            (row["tenant_id"], APPROVALS),
        )
        db.execute(
            """INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by)
               VALUES (%s, %s, 'test') ON CONFLICT DO NOTHING""",
            (row["tenant_id"], APPROVER),
        )
    # Whatever a test breaks is brought back by the next one's setup (or left to the
    # package's teardown): restarting a process costs seconds.
    return fault_stack
