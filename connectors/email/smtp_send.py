"""Send one outbound email through an SMTP relay (aiosmtplib), at most once.

SMTP offers no way to ask a server whether it already has a message, so reconciliation
is by the point of no return: the row is marked 'committing' just before DATA. Before
that mark, nothing the server could accept has been sent, and a retry sends again.
After it, a retry that finds the mark cannot know whether the relay took the message
(the worker may have died between the relay's 250 and our record of it), so it does
not send: the row becomes 'unknown' and an audit entry asks a person to check. A
definite answer to DATA (4xx or 5xx) is not ambiguous and is handled as such.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import structlog
from psycopg import Connection

from connectors.email.outbound import (
    Outbound,
    PermanentSendError,
    SendResult,
    TransientSendError,
    mark,
    mark_sent,
    record_outbound,
    sending_lock,
    settled_earlier,
)
from core.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SmtpRelay:
    host: str
    port: int
    security: str  # 'starttls', 'tls' (implicit) or 'none'
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None  # None: the system's trusted CAs

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpRelay:
        if settings.smtp_relay_host is None:
            raise ValueError("SMTP_RELAY_HOST is not set")
        password = settings.smtp_relay_password
        return cls(
            host=settings.smtp_relay_host,
            port=settings.smtp_relay_port,
            security=settings.smtp_relay_security,
            username=settings.smtp_relay_username,
            password=password.get_secret_value() if password else None,
            timeout=settings.smtp_relay_timeout_seconds,
        )


class _Refused(Exception):
    """A 5xx: the relay will not take this message."""


class _Deferred(Exception):
    """A 4xx or a failure before the commit point: nothing was delivered."""


class _Ambiguous(Exception):
    """The connection failed after DATA was sent: the relay may have the message."""


def send_reply_smtp(
    conn: Connection[dict[str, Any]],
    relay: SmtpRelay,
    *,
    tenant_id: int,
    conversation_id: int | None,
    message: EmailMessage,
) -> SendResult:
    """Send `message` (built with its Message-ID) unless an earlier attempt did or may have.

    Raises TransientSendError (retry later), PermanentSendError (refused) or SendBusy.
    """
    recorded = record_outbound(
        conn,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        message=message,
        transport="smtp",
    )
    with sending_lock(conn, recorded) as outbound:
        earlier = settled_earlier(outbound)
        if earlier is not None:
            return earlier
        if outbound.status in ("committing", "unknown"):
            if outbound.status == "committing":
                mark(conn, outbound, "unknown", error="an attempt died during DATA; not resent")
            log.warning("email.delivery_unknown", message_id=outbound.message_id)
            return SendResult(outbound.message_id, "unknown")
        mark(conn, outbound, "sending", count_attempt=True)
        try:
            asyncio.run(_transaction(relay, outbound, lambda: mark(conn, outbound, "committing")))
        except _Refused as exc:
            mark(conn, outbound, "failed", error=str(exc))
            raise PermanentSendError(str(exc)) from None
        except _Deferred as exc:
            mark(conn, outbound, "sending", error=str(exc))
            raise TransientSendError(str(exc)) from None
        except _Ambiguous as exc:
            mark(conn, outbound, "unknown", error=str(exc))
            log.warning("email.delivery_unknown", message_id=outbound.message_id)
            return SendResult(outbound.message_id, "unknown")
        log.info("email.sent", transport="smtp", message_id=outbound.message_id)
        return mark_sent(conn, outbound)


async def _transaction(relay: SmtpRelay, outbound: Outbound, commit: Callable[[], None]) -> None:
    client = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        username=relay.username,
        password=relay.password,
        timeout=relay.timeout,
        use_tls=relay.security == "tls",
        start_tls=relay.security == "starttls",
        tls_context=relay.tls_context,
    )
    try:
        await client.connect()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise _Refused(f"relay refused our credentials: {exc.code}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _Deferred(f"cannot reach the relay: {type(exc).__name__}: {exc}") from None
    try:
        await _envelope(client, outbound)
        commit()
        try:
            await client.data(outbound.raw)
        except aiosmtplib.SMTPResponseException as exc:
            _raise_for(exc, "DATA")  # a definite answer: not ambiguous
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _Ambiguous(f"connection lost after DATA: {type(exc).__name__}") from None
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def _envelope(client: aiosmtplib.SMTP, outbound: Outbound) -> None:
    options = []
    if not outbound.raw.isascii() and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    try:
        await client.mail(outbound.envelope_from, options=options)
    except aiosmtplib.SMTPResponseException as exc:
        _raise_for(exc, "MAIL FROM")
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _Deferred(f"MAIL FROM failed: {type(exc).__name__}") from None
    refused: list[aiosmtplib.SMTPResponseException] = []
    for recipient in outbound.envelope_to:
        try:
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            refused.append(exc)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _Deferred(f"RCPT TO failed: {type(exc).__name__}") from None
    if len(refused) == len(outbound.envelope_to):
        # Nobody accepted it. If any refusal was temporary, a retry may yet deliver.
        _raise_for(min(refused, key=lambda e: e.code), "RCPT TO")
    for refusal in refused:
        log.warning("email.recipient_refused", code=refusal.code, message_id=outbound.message_id)


def _raise_for(exc: aiosmtplib.SMTPResponseException, stage: str) -> None:
    text = f"{stage}: {exc.code} {exc.message}"[:500]
    if exc.code >= 500:
        raise _Refused(text) from None
    raise _Deferred(text) from None
