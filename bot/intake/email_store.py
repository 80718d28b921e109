"""Write one received email durably: raw bytes, its request row and its thread, atomically.

A single SQL statement does it all (data-modifying CTEs run in one snapshot and commit
together), so a message is either wholly stored or not at all, and the listener's
`250` costs one round trip to Postgres. A message we already have (same tenant and
Message-ID: the sender retried after losing our 250) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from connectors.email.loops import Verdict
from connectors.email.parse import ParsedEmail
from connectors.email.payload import request_payload, storable
from connectors.email.threads import CONVERSATION_CTE, conversation_params

STORE_SQL = (
    "WITH "
    + CONVERSATION_CTE
    + """,
request AS (
    INSERT INTO inbound_requests
        (tenant_id, source, external_id, kind, payload, status, error, finished_at,
         correlation_id)
    SELECT %(tenant_id)s, 'email', %(message_id)s, 'email',
           %(payload)s::jsonb || jsonb_build_object('conversation_id', conversation.id),
           %(status)s, %(error)s,
           CASE WHEN %(status)s = 'received' THEN NULL ELSE now() END,
           %(correlation_id)s
      FROM conversation
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id
),
stored AS (
    INSERT INTO email_messages
        (tenant_id, conversation_id, direction, message_id, in_reply_to, "references",
         subject, from_address, envelope_from, envelope_to, raw, size_bytes, request_id,
         parse_error, auto_kind)
    SELECT %(tenant_id)s, conversation.id, 'inbound', %(message_id)s, %(in_reply_to)s,
           %(references)s, %(subject)s, %(from_address)s, %(envelope_from)s,
           %(envelope_to)s, %(raw)b, %(size)s, request.id, %(parse_error)s, %(auto_kind)s
      FROM request, conversation
    RETURNING id
),
said AS (
    INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
    SELECT %(tenant_id)s, conversation.id, 'user', %(from_address)s, %(text)s,
           %(message_id)s
      FROM request, conversation
     WHERE %(answerable)s
    ON CONFLICT (conversation_id, external_id) DO NOTHING
)
SELECT (SELECT id FROM request) AS request_id,
       (SELECT id FROM conversation) AS conversation_id,
       (SELECT value FROM split) AS split
"""
)

MAX_TEXT_CHARS = 100_000  # of the subject-less text stored in `messages`


@dataclass(frozen=True)
class StoredEmail:
    request_id: int | None  # None: a copy of a message we already have
    conversation_id: int
    status: str  # 'received' (to answer), 'ignored' (never answered), 'failed' (unparseable)
    # It named a conversation its sender took no part in, so it started its own
    # (connectors/email/threads.py).
    split: bool = False


async def store_email(
    conn: AsyncConnection[dict[str, Any]],
    *,
    tenant_id: int,
    raw: bytes,
    mail: ParsedEmail,
    inbox: str,
    envelope_from: str,
    envelope_to: list[str],
    verdict: Verdict | None,
    correlation_id: str,
) -> StoredEmail:
    if mail.error is not None:
        status, error = "failed", f"unparseable email: {mail.error}"
    elif verdict is not None:
        status, error = "ignored", None
    else:
        status, error = "received", None
    payload = request_payload(
        mail,
        inbox=inbox,
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        verdict=verdict,
    )
    fields = conversation_params(tenant_id, mail) | {
        "message_id": mail.message_id,
        "status": status,
        "error": error,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references),
        "subject": mail.subject,
        "from_address": mail.sender.address if mail.sender else "",
        "envelope_from": envelope_from,
        "envelope_to": envelope_to,
        "size": len(raw),
        "parse_error": mail.error,
        "auto_kind": verdict.kind if verdict else None,
        "text": (mail.text or mail.subject)[:MAX_TEXT_CHARS],
        "answerable": status == "received",
    }
    params = storable(fields) | {
        "raw": raw,
        "payload": Jsonb(payload),
        "correlation_id": correlation_id,
    }
    row = await (await conn.execute(STORE_SQL, params)).fetchone()
    assert row is not None  # the final SELECT always returns one row
    return StoredEmail(
        request_id=row["request_id"],
        conversation_id=row["conversation_id"],
        status=status,
        split=bool(row["split"]),
    )
