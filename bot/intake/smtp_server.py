"""`chatops smtp`: the listener where people's email to the agent inboxes enters.

One asyncio process: aiosmtpd sessions, a psycopg async pool and the Dramatiq broker for
queueing. Requests stored while Redis was down are queued later by the workers' sweep
(bot/queue/stranded.py). STARTTLS and AUTH are offered when configured; per-client
limits refuse floods with 421/450.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from opentelemetry.trace import Tracer

from bot.intake.email_handler import EmailIntake, IntakeConfig, RoutedEnvelope
from bot.intake.email_limits import ClientLimitConfig, ClientLimits
from bot.intake.request_queuer import Together
from bot.intake.smtp_data import ChunkedData
from bot.observability.exposition import serve_metrics
from bot.observability.tracing import build_tracing
from bot.queue.jobs import Enqueue, enqueue_request
from connectors.email.raw_mail import RawMailCipher
from core.broker import build_broker, one_round_trip
from core.db import open_async_pool
from core.errors import StartupError
from core.metrics import Metrics
from core.settings import Settings

log = structlog.get_logger(__name__)

SESSION_TIMEOUT = 300.0  # seconds of client silence before the connection is closed
DRAIN_TIMEOUT = 5.0  # seconds to finish queueing at shutdown
REFUSED_CONNECTION = "421 4.7.0 {reason}, try again later\r\n"
# The address form nearly all mail uses in MAIL FROM and RCPT TO: <local@domain>, both
# dot-atoms of ASCII atext (RFC 5322), nothing before the "<" or inside the brackets.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>")


@dataclass(frozen=True)
class ListenerOptions:
    """Everything the SMTP protocol objects need, built once from the settings."""

    server_name: str
    max_message_bytes: int
    tls_context: ssl.SSLContext | None
    require_starttls: bool
    authenticator: Callable[..., AuthResult] | None
    auth_required: bool


class IntakeSMTP(ChunkedData):
    """aiosmtpd's protocol with per-client connection limits, routed envelopes, and DATA
    read in the pieces it arrives in (smtp_data.py)."""

    def __init__(self, handler: EmailIntake, limits: ClientLimits, options: ListenerOptions):
        super().__init__(
            handler,
            data_size_limit=options.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=options.server_name,
            ident="chatops-agent",
            tls_context=options.tls_context,
            require_starttls=options.require_starttls,
            timeout=SESSION_TIMEOUT,
            auth_required=options.auth_required,
            auth_require_tls=True,
            authenticator=options.authenticator,
        )
        self._limits = limits
        self._client: str | None = None  # set once admitted; released when the session ends
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and not self._refused:  # a new connection, not STARTTLS
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
            reason = self._limits.admit_connection(client)
            if reason is not None:
                self._refused = True
                log.warning("smtp.connection_refused", client=client, reason=reason)
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(REFUSED_CONNECTION.format(reason=reason).encode())
                transport.close()
                return
            self._client = client
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._client is not None:
            self._limits.release(self._client)
            self._client = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return None if self._refused else super().eof_received()

    def _create_envelope(self) -> Envelope:
        return RoutedEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's own reads every address with the email package's header parser and
        # declares a class on each call: about a tenth of the listener's CPU per message.
        # The plain form gives the same answer read directly (a test compares the two on
        # many addresses); anything else is left to aiosmtpd.
        plain = plain_address(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, rest = plain
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


def plain_address(arg: str) -> tuple[str, str] | None:
    """The address and what follows it (SMTP parameters) in a MAIL or RCPT argument of
    the plain form `<local@domain>`, as aiosmtpd's parser reads them; None for any other
    form (and for "=?", which starts an RFC 2047 encoded word to that parser)."""
    match = _PLAIN_ADDRESS.match(arg)
    if match is None or "=?" in match.group(1):
        return None
    rest = arg[match.end() :]
    if rest[:1] in (" ", "\t"):  # whitespace after ">" is skipped, any kind once started
        rest = rest.lstrip()
    if rest[:1] == "(":  # a comment: left to the full parser
        return None
    return match.group(1), rest


def listener_options(settings: Settings) -> ListenerOptions:
    return ListenerOptions(
        server_name=settings.smtp_server_name,
        max_message_bytes=settings.email_max_message_bytes,
        tls_context=_tls_context(settings),
        require_starttls=settings.smtp_require_starttls,
        authenticator=_authenticator(settings),
        auth_required=settings.smtp_auth_required,
    )


def client_limits(settings: Settings) -> ClientLimits:
    return ClientLimits(
        ClientLimitConfig(
            max_concurrent=settings.smtp_max_connections_per_client,
            connections_per_minute=settings.smtp_connections_per_client_per_minute,
            messages_per_minute=settings.smtp_messages_per_client_per_minute,
        )
    )


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.smtp_tls_cert_file, settings.smtp_tls_key_file
    if cert is None and key is None:
        if settings.smtp_require_starttls:
            raise StartupError("SMTP_REQUIRE_STARTTLS needs SMTP_TLS_CERT_FILE and _KEY_FILE")
        return None
    if cert is None or key is None:
        raise StartupError("set both SMTP_TLS_CERT_FILE and SMTP_TLS_KEY_FILE, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load the SMTP TLS certificate: {exc}") from None
    return context


def _authenticator(settings: Settings) -> Callable[..., AuthResult] | None:
    username, password = settings.smtp_auth_username, settings.smtp_auth_password
    if username is None or password is None:
        if settings.smtp_auth_required:
            raise StartupError("SMTP_AUTH_REQUIRED needs SMTP_AUTH_USERNAME and _PASSWORD")
        return None
    if settings.smtp_tls_cert_file is None:
        raise StartupError("SMTP AUTH is offered after STARTTLS only: set SMTP_TLS_CERT_FILE")
    expected_user = username.encode()
    expected_password = password.get_secret_value().encode()

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, expected_user) & hmac.compare_digest(
            auth_data.password, expected_password
        )
        return AuthResult(success=bool(ok), handled=False)

    return authenticate


async def serve_smtp(
    settings: Settings,
    host: str,
    port: int,
    *,
    enqueue: Enqueue,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
    enqueue_together: Together = contextlib.nullcontext,
) -> None:
    """Listen until `stop` is set; `on_ready` gets the bound port (useful with port 0).
    `enqueue_together`: what each batch of enqueues runs inside (one_round_trip)."""
    metrics = metrics if metrics is not None else Metrics.create()
    options = listener_options(settings)
    pool = await open_async_pool(settings.database_url, max_size=settings.database_pool_size)
    handler = EmailIntake(
        pool,
        enqueue,
        client_limits(settings),
        IntakeConfig(
            db_timeout=settings.smtp_db_timeout_seconds,
            raw_cipher=RawMailCipher.from_settings(settings),
        ),
        metrics,
        tracer,
        enqueue_together=enqueue_together,
    )
    limits = handler.limits
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: IntakeSMTP(handler, limits, options), host=host, port=port
        )
    except OSError as exc:
        await pool.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None
    bound: int = server.sockets[0].getsockname()[1]
    handler.committer.start()
    handler.queuer.start()
    log.info("smtp.ready", host=host, port=bound, starttls=options.tls_context is not None)
    if on_ready is not None:
        on_ready(bound)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await handler.committer.close()
        await handler.queuer.close(DRAIN_TIMEOUT)
        await pool.close()
        log.info("smtp.stopped")


def run_smtp(settings: Settings, host: str, port: int) -> None:
    """The `chatops smtp` process: runs until SIGTERM or SIGINT."""
    broker = build_broker(settings)
    metrics = Metrics.create()
    metrics_server = None
    if settings.metrics_enabled and settings.smtp_metrics_port is not None:
        metrics_server = serve_metrics(
            metrics.registry, settings.metrics_host, settings.smtp_metrics_port
        )

    def enqueue(request_id: int, kind: str, correlation_id: str | None) -> None:
        enqueue_request(broker, request_id, kind, correlation_id)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_smtp(
            settings,
            host,
            port,
            enqueue=enqueue,
            stop=stop,
            metrics=metrics,
            tracer=tracing.tracer,
            enqueue_together=lambda: one_round_trip(broker),
        )

    tracing = build_tracing(settings, "chatops-smtp")
    try:
        asyncio.run(main())
    finally:
        tracing.shutdown()
        if metrics_server is not None:
            metrics_server.close()
        broker.close()
