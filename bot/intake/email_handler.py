"""The SMTP listener's decisions: who may send, to which inboxes, and when `250` is earned.

aiosmtpd calls the `handle_*` hooks. RCPT TO is looked up in the tenants' inboxes
(unknown: 550, before any data is taken). At the end of DATA the message is stored as it
arrived (sealed) with a request for every tenant it reaches, in one transaction with what
other sessions store meanwhile (email_store.py's group commit), and only once that has
committed is it answered `250`: a 250 is a promise. Postgres unreachable or slow means
`451` and the sending server retries later. Nothing else happens before the 250: the
message is read (parsed, screened, threaded) by the worker that answers it
(connectors/email/inbound_store.py). Requests are queued after the 250
(request_queuer.py); if Redis is down they stay 'received' and the workers' sweep queues
them later.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

from bot.intake.email_limits import ClientLimits
from bot.intake.email_routes import RouteCache
from bot.intake.email_store import GroupCommit, StoredArrival
from bot.intake.request_queuer import RequestQueuer, Together
from bot.queue.jobs import Enqueue
from connectors.email.inbound_store import arrival_params
from connectors.email.inboxes import InboxRoute
from connectors.email.parse import message_id_of
from connectors.email.raw_mail import RawMailCipher
from core.correlation import LOG_KEY, new_correlation_id
from core.db import AsyncPool
from core.metrics import Metrics

log = structlog.get_logger(__name__)

TEMPORARY_FAILURE = "451 4.3.0 Temporary local problem, please try again later"
TOO_MANY_MESSAGES = "450 4.7.1 Too many messages from your address, please try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
ACCEPTED = "250 2.0.0 OK: message stored"
EMAIL_KIND = "email"  # inbound_requests.kind of every email request


@dataclass(frozen=True)
class IntakeConfig:
    db_timeout: float  # seconds for one lookup or store before answering 451
    max_recipients: int = 100
    raw_cipher: RawMailCipher | None = None  # None: raw bytes stored as received


class RoutedEnvelope(Envelope):
    """An envelope that remembers which inbox each accepted recipient reached."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[InboxRoute] = []


def client_address(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


class EmailIntake:
    """The aiosmtpd handler: routing, limits, durable storage before `250`."""

    def __init__(
        self,
        pool: AsyncPool,
        enqueue: Enqueue,
        limits: ClientLimits,
        config: IntakeConfig,
        metrics: Metrics,
        tracer: Tracer | None = None,
        *,
        enqueue_together: Together = contextlib.nullcontext,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.tracer = tracer if tracer is not None else NoOpTracer()
        self.limits = limits
        self.config = config
        self.routes = RouteCache(pool, timeout=config.db_timeout)
        self.committer = GroupCommit(pool, timeout=config.db_timeout)
        self.queuer = RequestQueuer(
            pool, enqueue, timeout=config.db_timeout, together=enqueue_together
        )

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Relays that authenticated deliver many people's mail; they are not throttled.
        if not session.authenticated and not self.limits.admit_message(client_address(session)):
            log.warning("smtp.message_rate_limited", client=client_address(session))
            return TOO_MANY_MESSAGES
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(envelope, RoutedEnvelope)
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            return TOO_MANY_RECIPIENTS
        try:
            route = await self.routes.route(address)
        except Exception as exc:
            log.error("smtp.lookup_failed", error=type(exc).__name__)
            return TEMPORARY_FAILURE
        if route is None:
            log.info("smtp.unknown_recipient", client=client_address(session))
            return f"550 5.1.1 <{address}>: no such inbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        envelope.routes.append(route)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # One id for the message, shared by the requests it makes for each tenant it reaches.
        correlation_id = new_correlation_id()
        span = self.tracer.start_as_current_span(
            "smtp.message",
            kind=SpanKind.SERVER,
            attributes={"smtp.recipients": len(envelope.rcpt_tos), LOG_KEY: correlation_id},
        )
        # The span is current while the message is stored and handed to the queuer, which
        # keeps its context for the job it queues after the 250.
        with span as current, structlog.contextvars.bound_contextvars(**{LOG_KEY: correlation_id}):
            reply = await self._take(envelope, correlation_id)
            current.set_attribute("smtp.reply_code", int(reply[:3]))
            return reply

    async def _take(self, envelope: Envelope, correlation_id: str) -> str:
        assert isinstance(envelope, RoutedEnvelope)
        raw = envelope.original_content
        if not isinstance(raw, bytes):
            raw = bytes(raw or b"")
        try:
            stored = await self._store(raw, envelope, correlation_id)
        except Exception as exc:
            # Not committed (or not known to be): 451, and the sender retries. A retry of a
            # message that was committed after all is a no-op that gets its 250.
            log.error("smtp.store_failed", error=type(exc).__name__, size=len(raw))
            self.metrics.emails_received.labels("deferred").inc()
            return TEMPORARY_FAILURE
        for item in stored:
            outcome = "received" if item.request_id is not None else "duplicate"
            log.info("email.received", request_id=item.request_id, status=outcome, size=len(raw))
            self.metrics.emails_received.labels(outcome).inc()
            if item.request_id is not None:
                self.queuer.submit(item.request_id, EMAIL_KIND, correlation_id)
        return ACCEPTED

    async def _store(
        self, raw: bytes, envelope: RoutedEnvelope, correlation_id: str
    ) -> list[StoredArrival]:
        """Store the message for every tenant it reaches, committed with what other
        sessions store meanwhile; returns once committed."""
        recipients: dict[int, list[str]] = {}
        for route in envelope.routes:
            recipients.setdefault(route.tenant_id, []).append(route.recipient)
        message_id = message_id_of(raw)
        arrivals = [
            arrival_params(
                tenant_id=tenant_id,
                raw=raw,
                message_id=message_id,
                envelope_from=envelope.mail_from or "",
                envelope_to=addresses,
                correlation_id=correlation_id,
                raw_cipher=self.config.raw_cipher,
            )
            for tenant_id, addresses in recipients.items()
        ]
        async with asyncio.timeout(self.config.db_timeout):
            return await self.committer.store(arrivals)
