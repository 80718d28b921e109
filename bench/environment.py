"""Everything the benchmark runs against, set up as the test suite does and torn down after.

Postgres: BENCH_DATABASE_URL if set, else the embedded server in a temporary directory;
either way a fresh database, migrated, dropped at the end. Redis: BENCH_REDIS_URL, else
127.0.0.1:6379 database 14, with a namespace no other run shares, whose keys are deleted
at the end. Then the Slack and OpenAI emulators, `chatops serve`, `chatops worker` and
the bare Bolt baseline, all as children that `ExitStack` stops in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from psycopg.conninfo import make_conninfo

from core.migrate import apply_migrations
from core.settings import Settings
from sandbox.embedded_postgres import start_embedded_postgres
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from testbed.conversation import PLAN
from testbed.markers import new_marker
from testbed.redis_keys import own_namespace
from testbed.stack import Stack, free_port, product_env, start_stack

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
BENCH_ANSWER = "Benchmark answer: refunds are accepted within 30 days."
START_TIMEOUT = 30.0  # s for the bare Bolt app to answer /healthz
STOP_TIMEOUT = 15.0  # s a child gets to exit after SIGTERM, as tests/support allows

# product_env is tuned for the failure tests; these put back the shipped defaults where
# a test value would change the cost being measured. The tests run queue upkeep on every
# Redis command (so a dead worker's job comes back within seconds); production does it
# on one in ten. The tests read each tenant's masking policy afresh on every request (a
# policy a test changes applies at once); production keeps it for its cache's seconds,
# where the tests' 0 cost each Slack ack one more query.
PRODUCTION_DEFAULTS = {
    "QUEUE_MAINTENANCE_PER_MILLION": "100000",
    "WORKER_HEARTBEAT_TIMEOUT_SECONDS": "60",
    "GUARDRAILS_POLICY_CACHE_SECONDS": str(
        Settings.model_fields["guardrails_policy_cache_seconds"].default
    ),
}


@dataclass
class BareBolt:
    process: subprocess.Popen[bytes]
    events_url: str


@dataclass
class Services:
    """What the product runs against: a migrated database, a Redis namespace, emulators."""

    slack: SlackEmulator
    llm: OpenAIEmulator
    server_url: str  # the Postgres server, where more databases can be made
    database_url: str
    redis_url: str
    namespace: str
    workdir: Path
    log_dir: Path

    def product_env(self) -> dict[str, str]:
        """`chatops` processes' environment, with the shipped defaults for what is measured."""
        env = product_env(
            database_url=self.database_url,
            redis_url=self.redis_url,
            namespace=self.namespace,
            slack=self.slack,
            llm_primary=self.llm,
            llm_fallback=None,
        )
        return env | PRODUCTION_DEFAULTS

    @property
    def description(self) -> str:
        postgres = "BENCH_DATABASE_URL" if "BENCH_DATABASE_URL" in os.environ else "embedded"
        return (
            f"Postgres {postgres}, Redis {_without_password(self.redis_url)}, Slack and OpenAI"
            " emulators, all on this machine"
        )


@dataclass
class BenchEnv:
    slack: SlackEmulator
    llm: OpenAIEmulator
    stack: Stack
    bare: BareBolt
    database_url: str
    workdir: Path
    description: str  # where Postgres and Redis came from, for the report


@contextmanager
def bench_services() -> Iterator[Services]:
    """Postgres, Redis and the emulators; every `chatops` child started under it is
    stopped when it ends, also on Ctrl-C."""
    with ExitStack() as stack:
        workdir = stack.enter_context(temporary_directory())
        server_url = stack.enter_context(postgres_server(workdir))
        database_url = stack.enter_context(fresh_database(server_url))
        redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
        namespace = stack.enter_context(redis_namespace(redis_url))
        slack = stack.enter_context(SlackEmulator())
        llm = stack.enter_context(OpenAIEmulator())
        log_dir = workdir / "logs"
        log_dir.mkdir()
        # start_stack stops the listener only when the worker fails with an Exception; a
        # Ctrl-C (or SIGTERM) while a process starts would leave it running otherwise.
        stack.callback(_stop_stray_children, "bot.cli")
        yield Services(slack, llm, server_url, database_url, redis_url, namespace, workdir, log_dir)


@contextmanager
def bench_environment() -> Iterator[BenchEnv]:
    with ExitStack() as stack:
        services = stack.enter_context(bench_services())
        script_instant_answers(services.llm)
        bare = stack.enter_context(_bare_bolt(services.slack, services.log_dir))
        env = services.product_env()
        running = start_stack(services.slack, env, services.log_dir)
        stack.callback(running.stop)
        description = f"{services.description}; worker threads {env['WORKER_THREADS']}"
        yield BenchEnv(
            services.slack,
            services.llm,
            running,
            bare,
            services.database_url,
            services.workdir,
            description,
        )


def script_instant_answers(llm: OpenAIEmulator, delay: float = 0.0) -> None:
    """A valid Plan and Draft for every request, told apart by their system prompts;
    each answered after `delay` seconds (0: at once)."""
    # Imported here: the prompts module pulls in the screen (presidio, seconds of import)
    # that the benchmarks with no LLM in them need not pay.
    from bot.agent.prompts import DRAFT_SYSTEM_BASE, PLAN_SYSTEM_BASE

    draft = {"answer": BENCH_ANSWER, "citations": []}
    # By the part of each system prompt every request has (the guardrail rules come only
    # with what needs them).
    llm.script(Reply(content=PLAN, repeat=True, delay=delay), match=PLAN_SYSTEM_BASE)
    llm.script(Reply(content=draft, repeat=True, delay=delay), match=DRAFT_SYSTEM_BASE)
    # No default: a prompt we did not expect fails loudly (HTTP 500) instead of being
    # answered with the wrong schema.
    llm.set_default(None)


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


@contextmanager
def temporary_directory(prefix: str = "chatops-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """BENCH_DATABASE_URL's server, else an embedded one with its data in `workdir`."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    url, server = start_embedded_postgres(workdir / "postgres")
    try:
        yield url
    finally:
        server.cleanup()


@contextmanager
def fresh_database(server_url: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database on the server, migrated unless told not to; dropped at the end."""
    name = f"chatops_bench_{new_marker(10)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        if migrate:
            apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_namespace(url: str, prefix: str = "chatops-bench") -> Iterator[str]:
    """A key prefix no other run shares; its keys are deleted at the end."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"no Redis answers at {url} (set BENCH_REDIS_URL): {exc}") from None
    finally:
        client.close()
    with own_namespace(url, prefix) as namespace:
        yield namespace


@contextmanager
def _bare_bolt(slack: SlackEmulator, log_dir: Path) -> Iterator[BareBolt]:
    port = free_port()
    app = slack.workspace.app
    command = [sys.executable, "-m", "bench.bare_bolt", "--port", str(port)]
    command += ["--bot-user-id", app.bot_user_id, "--bot-id", app.bot_id]
    env = {**os.environ, "BARE_BOLT_SIGNING_SECRET": slack.signing_secret}
    with (log_dir / "bare_bolt.log").open("ab") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_healthy(process, f"http://127.0.0.1:{port}/healthz")
        yield BareBolt(process, f"http://127.0.0.1:{port}/slack/events")
    finally:
        _stop(process)


def _stop_stray_children(marker: str) -> None:
    """SIGTERM, then SIGKILL, our own child processes whose command line holds `marker`."""
    strays = [pid for pid in _children() if marker in _command_line(pid)]
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in strays:
        if not _reaped_by(pid, deadline):
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def _reaped_by(pid: int, deadline: float) -> bool:
    """Whether our child `pid` exits (and is reaped here) before `deadline`."""
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return True
        except ChildProcessError:
            return True  # already reaped, e.g. by its Popen
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _children() -> list[int]:
    me = str(os.getpid())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The field after the parenthesised command name: state, then the parent's pid.
            if stat.read_text().rpartition(")")[2].split()[1] == me:
                pids.append(int(stat.parent.name))
    return pids


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare Bolt app exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - localhost
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the bare Bolt app did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
