"""The record of each outgoing email, which makes a retried send deliver at most once.

The Message-ID, generated when the message was built, is the key: one row per tenant and
Message-ID in email_messages (direction 'outbound'), holding the exact bytes to send.
Its status moves forward only:

    sending     recorded; nothing the server could have accepted has been handed over
    committing  the step after which the server may have accepted it is under way
                (SMTP: DATA; Gmail: the messages.send request)
    sent        the server accepted it
    failed      the server refused it; nothing was delivered
    unknown     an attempt died while committing and there is no way to ask (SMTP);
                it is never resent automatically, and is audited for a person to check

A session advisory lock on the row keeps two workers from sending the same message at
once; a worker killed mid-send loses its connection and so its lock, and the next
attempt finds the status it left behind. The senders are smtp_send.py and gmail_send.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from psycopg import Connection

from connectors.email.parse import MSG_ID, parse_email
from core.store import audit
from guardrails.at_rest import for_storage

ADVISORY_NAMESPACE = 0x6D  # high bits of the lock key: keeps send locks apart from others
WIRE_POLICY = policy.SMTP  # CRLF line endings, as sent
MAX_TEXT_CHARS = 100_000


class SendBusy(Exception):
    """Another worker is sending this message right now; retry later."""


class TransientSendError(Exception):
    """Not delivered, or the outcome is checked on the next attempt: retry later."""


class PermanentSendError(Exception):
    """The server refused the message; retrying cannot help."""


@dataclass(frozen=True)
class Outbound:
    id: int
    tenant_id: int
    conversation_id: int | None
    message_id: str
    transport: str
    status: str
    attempts: int
    raw: bytes
    envelope_from: str
    envelope_to: list[str]
    provider_message_id: str | None
    provider_thread_id: str | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class SendResult:
    message_id: str
    status: str  # 'sent'; 'already_sent' (an earlier attempt did it); 'unknown' (see above)
    provider_message_id: str | None = None
    provider_thread_id: str | None = None


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire: CRLF, and without Bcc (recipients must not see it)."""
    if "Bcc" in message:
        message = copy.deepcopy(message)
        del message["Bcc"]
    return message.as_bytes(policy=WIRE_POLICY)


def envelope_of(message: EmailMessage) -> tuple[str, list[str]]:
    """Reverse-path and recipients: From, and everyone in To, Cc and Bcc."""
    senders = getaddresses([str(v) for v in message.get_all("From", [])])
    if not senders or "@" not in senders[0][1]:
        raise ValueError("the message has no From address")
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = list(dict.fromkeys(a for _, a in getaddresses(fields) if "@" in a))
    if not recipients:
        raise ValueError("the message has no recipients")
    return senders[0][1], recipients


def message_id_of(message: EmailMessage) -> str:
    found = MSG_ID.findall(str(message.get("Message-ID", "")))
    if not found:
        raise ValueError("build the message with a Message-ID first: it is the idempotency key")
    return f"<{found[0]}>"


def record_outbound(
    conn: Connection[dict[str, Any]],
    *,
    tenant_id: int,
    conversation_id: int | None,
    message: EmailMessage,
    transport: str,
) -> Outbound:
    """The outbound row for this message, created as 'sending' on the first attempt.

    A later attempt gets the existing row back, bytes included: what is sent is always
    what was first recorded.
    """
    message_id = message_id_of(message)
    sender, recipients = envelope_of(message)
    conn.execute(
        """INSERT INTO email_messages
             (tenant_id, conversation_id, direction, message_id, in_reply_to, "references",
              subject, from_address, envelope_from, envelope_to, raw, size_bytes,
              transport, status)
           VALUES (%s, %s, 'outbound', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'sending')
           ON CONFLICT (tenant_id, message_id, direction) DO NOTHING""",
        (
            tenant_id,
            conversation_id,
            message_id,
            _first_id(message, "In-Reply-To"),
            [f"<{i}>" for i in MSG_ID.findall(str(message.get("References", "")))],
            str(message.get("Subject", "")),
            sender,
            sender,
            recipients,
            raw := wire_bytes(message),
            len(raw),
            transport,
        ),
    )
    outbound = load_outbound(conn, tenant_id, message_id)
    assert outbound is not None
    return outbound


def load_outbound(
    conn: Connection[dict[str, Any]], tenant_id: int, message_id: str
) -> Outbound | None:
    row = conn.execute(
        """SELECT id, tenant_id, conversation_id, message_id, transport, status, attempts,
                  raw, envelope_from, envelope_to, provider_message_id, provider_thread_id,
                  error, created_at
             FROM email_messages
            WHERE tenant_id = %s AND direction = 'outbound' AND message_id = %s""",
        (tenant_id, message_id),
    ).fetchone()
    if row is None:
        return None
    return Outbound(**(row | {"raw": bytes(row["raw"])}))


@contextmanager
def sending_lock(conn: Connection[dict[str, Any]], outbound: Outbound) -> Iterator[Outbound]:
    """Hold the row's lock; yields the row as it is now that we hold it."""
    key = (ADVISORY_NAMESPACE << 47) | outbound.id
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
    if not (row and row["ok"]):
        raise SendBusy(f"{outbound.message_id} is being sent by another worker")
    try:
        current = load_outbound(conn, outbound.tenant_id, outbound.message_id)
        assert current is not None
        yield current
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def mark(
    conn: Connection[dict[str, Any]],
    outbound: Outbound,
    status: str,
    *,
    error: str | None = None,
    count_attempt: bool = False,
) -> None:
    conn.execute(
        """UPDATE email_messages
              SET status = %s, error = COALESCE(%s, error), attempts = attempts + %s
            WHERE id = %s AND tenant_id = %s""",
        (status, error, 1 if count_attempt else 0, outbound.id, outbound.tenant_id),
    )
    if status in ("unknown", "failed"):
        audit.append(
            conn,
            audit.Entry(
                tenant_id=outbound.tenant_id,
                actor="email",
                action=f"email.{status}",
                subject=outbound.message_id,
                details={"transport": outbound.transport, "error": error},
            ),
        )


def settled_earlier(outbound: Outbound) -> SendResult | None:
    """What an earlier attempt settled: sent (its result again) or refused for good
    (raises PermanentSendError again); None while it is not settled."""
    if outbound.status == "sent":
        return SendResult(
            outbound.message_id,
            "already_sent",
            outbound.provider_message_id,
            outbound.provider_thread_id,
        )
    if outbound.status == "failed":
        raise PermanentSendError(outbound.error or "refused earlier")
    return None


def mark_sent(
    conn: Connection[dict[str, Any]],
    outbound: Outbound,
    *,
    provider_message_id: str | None = None,
    provider_thread_id: str | None = None,
) -> SendResult:
    """Record the delivery, and the reply as the assistant's turn in its conversation."""
    with conn.transaction():
        conn.execute(
            """UPDATE email_messages
                  SET status = 'sent', sent_at = now(), error = NULL,
                      provider_message_id = %s, provider_thread_id = %s
                WHERE id = %s AND tenant_id = %s""",
            (provider_message_id, provider_thread_id, outbound.id, outbound.tenant_id),
        )
        if outbound.conversation_id is not None:
            conn.execute(
                """INSERT INTO messages
                     (tenant_id, conversation_id, role, author, text, external_id)
                   VALUES (%s, %s, 'assistant', %s, %s, %s)
                   ON CONFLICT (conversation_id, external_id) DO NOTHING""",
                (
                    outbound.tenant_id,
                    outbound.conversation_id,
                    outbound.envelope_from,
                    # What the tenant masks for good is not kept in clear, even as sent.
                    for_storage(conn, outbound.tenant_id, _body_text(outbound.raw)),
                    outbound.message_id,
                ),
            )
    return SendResult(outbound.message_id, "sent", provider_message_id, provider_thread_id)


def _first_id(message: EmailMessage, name: str) -> str | None:
    found = MSG_ID.findall(str(message.get(name, "")))
    return f"<{found[0]}>" if found else None


def _body_text(raw: bytes) -> str:
    parsed = parse_email(raw)
    return (parsed.text or parsed.subject)[:MAX_TEXT_CHARS]
