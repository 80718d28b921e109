"""Shared pieces of the email tests: tenants with inboxes, the SMTP listener running in
this process on a real socket, and the corpus. The fixtures are in fixtures.py."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry.trace import Tracer

from bot.intake.smtp_server import serve_smtp
from bot.queue.jobs import enqueue_request
from connectors.email.inboxes import add_inbox
from connectors.email.parse import ParseLimits
from core.broker import build_broker
from core.settings import Settings, load_settings
from testbed.markers import new_marker

DB = psycopg.Connection[dict[str, Any]]
REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO.parent / "shared" / "corpora" / "email"  # the issue's ../shared/corpora/email
START_TIMEOUT = 15.0  # seconds
# Generous limits for tests that are not about limits: many messages from 127.0.0.1.
RELAXED_LIMITS = {
    "smtp_max_connections_per_client": 50,
    "smtp_connections_per_client_per_minute": 10_000,
    "smtp_messages_per_client_per_minute": 10_000,
}


@dataclass(frozen=True)
class Tenant:
    id: int
    domain: str
    inbox: str  # help@<domain>


def make_tenant(db: DB, *, domain_inbox: bool = False, transport: str = "smtp") -> Tenant:
    """A tenant with a unique domain and the inbox help@ that domain (or the whole domain)."""
    domain = f"t{new_marker(10)}.example"
    row = db.execute(
        "INSERT INTO tenants (name) VALUES (%s) RETURNING id", (f"tenant {domain}",)
    ).fetchone()
    assert row is not None
    inbox = f"help@{domain}"
    add_inbox(db, row["id"], domain if domain_inbox else inbox, transport=transport)
    return Tenant(row["id"], domain, inbox)


def email_settings(database_url: str, redis_url: str, namespace: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "queue_namespace": namespace,
        "slack_signing_secret": "unused-by-email",
        "smtp_db_timeout_seconds": 3.0,
    }
    return load_settings(**(values | overrides))


@dataclass
class RunningListener:
    """`serve_smtp` on its own event loop in a thread, as `chatops smtp` runs it."""

    settings: Settings
    tracer: Tracer | None = None
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> RunningListener:
        ready = threading.Event()
        broker = build_broker(self.settings)

        def enqueue(request_id: int, kind: str, correlation_id: str | None) -> None:
            enqueue_request(broker, request_id, kind, correlation_id)

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve_smtp(
                self.settings,
                "127.0.0.1",
                0,
                enqueue=enqueue,
                stop=self._stop,
                on_ready=on_ready,
                tracer=self.tracer,
            )

        def run() -> None:
            try:
                self._loop.run_until_complete(main())
            except BaseException as exc:
                self._error = exc
                ready.set()
            finally:
                broker.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"SMTP listener did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(START_TIMEOUT)
        self._loop.close()


def start_listener(settings: Settings) -> RunningListener:
    return RunningListener(settings).start()


def request_rows(db: DB, tenant_id: int) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT r.id, r.status, r.error, r.payload, e.raw, e.auto_kind, e.parse_error,
                  e.conversation_id, e.message_id, e.raw_sealed, r.tenant_id
             FROM inbound_requests r JOIN email_messages e ON e.request_id = r.id
            WHERE r.tenant_id = %s ORDER BY r.id""",
        (tenant_id,),
    ).fetchall()


def worker_reads(db: DB, settings: Settings, tenant_id: int) -> None:
    """What a worker does first with each of the tenant's new email requests: read the
    message the listener stored as it arrived (inbound_store.read_arrived)."""
    from connectors.email.inbound_store import read_arrived
    from connectors.email.raw_mail import RawMailCipher
    from guardrails.at_rest import default_masker

    arrived = db.execute(
        """SELECT id FROM inbound_requests
            WHERE tenant_id = %s AND source = 'email' AND payload ? 'arrived' ORDER BY id""",
        (tenant_id,),
    ).fetchall()
    for row in arrived:
        read_arrived(
            db,
            row["id"],
            cipher=RawMailCipher.from_settings(settings),
            limits=ParseLimits(),
            masker=default_masker(),
        )


def raw_bytes(settings: Settings, row: dict[str, Any]) -> bytes:
    """A stored message's raw bytes as they arrived (they are stored sealed)."""
    from connectors.email.raw_mail import RawMailCipher

    sealed = bytes(row["raw"])
    if not row["raw_sealed"]:
        return sealed
    return RawMailCipher.from_settings(settings).open(row["tenant_id"], row["message_id"], sealed)


def corpus_files() -> list[Path]:
    skip = {"LICENSE.txt", "SOURCE.md", "MANIFEST.tsv"}
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in skip)
