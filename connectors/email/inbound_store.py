"""Received email in Postgres, in two steps: the raw message as it arrived, then what it says.

Arrival (the SMTP listener, before it answers 250): one statement stores the message's
sealed raw bytes and its request, for one tenant, and nothing else: no parsing, no
screening, no threading stands between the last byte and the 250, and a 250 still means
the message is stored. A message we already have (same tenant and Message-ID: the sender
retried after losing our 250) changes nothing.

Reading (the worker, first thing in the request's job): the raw bytes are opened and
parsed, the loop check decides whether the message may be answered, what the tenant masks
for good is masked, and one statement threads the message into its conversation, records
its text and fills in the request. A job retried after a crash reads it again only if the
first reading did not commit (the statement is atomic, and the request says it was read).

Nothing the tenant masks for good is stored in clear (guardrails/at_rest.py): card
numbers, SSNs, IBANs and secrets in the subject, text, quoted history, signature and
attachments' text are masked in the request's payload, the stored message and the subject
column; the raw bytes, which hold them all, are stored sealed (`RawMailCipher`: AES-GCM,
the tenant and Message-ID as associated data) and opened only to be read, in the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg.types.json import Jsonb

from connectors.email.loops import never_answer
from connectors.email.parse import ParseLimits, parse_email, unparseable
from connectors.email.payload import clean_text, request_payload, storable
from connectors.email.raw_mail import RawMailCipher
from connectors.email.threads import CONVERSATION_CTE, conversation_params
from core.store import requests
from guardrails.at_rest import AtRestMasker, masked_for_good, policy_of

log = structlog.get_logger(__name__)

ARRIVAL_SQL = (
    "WITH "
    + requests.EMAIL_ARRIVAL_CTE
    + """,
stored AS (
    INSERT INTO email_messages
        (tenant_id, direction, message_id, envelope_from, envelope_to, raw, size_bytes,
         request_id, raw_sealed)
    SELECT %(tenant_id)s, 'inbound', %(message_id)s, %(envelope_from)s, %(envelope_to)s,
           %(raw)b, %(size)s, request.id, %(raw_sealed)s
      FROM request
)
SELECT (SELECT id FROM request) AS request_id
"""
)

READ_SQL = (
    "WITH "
    + CONVERSATION_CTE
    + ",\n"
    + requests.EMAIL_READ_CTE
    + """,
stored AS (
    UPDATE email_messages
       SET conversation_id = conversation.id, in_reply_to = %(in_reply_to)s,
           "references" = %(references)s, subject = %(subject)s,
           from_address = %(from_address)s, parse_error = %(parse_error)s,
           auto_kind = %(auto_kind)s
      FROM conversation
     WHERE email_messages.id = %(email_id)s
),
said AS (
    INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
    SELECT %(tenant_id)s, conversation.id, 'user', %(from_address)s, %(text)s,
           %(message_id)s
      FROM conversation
     WHERE %(answerable)s
    ON CONFLICT (conversation_id, external_id) DO NOTHING
)
SELECT (SELECT id FROM conversation) AS conversation_id,
       (SELECT value FROM split) AS split
"""
)

ARRIVED_KEY = "arrived"  # in the payload of a request whose message is not read yet
MAX_TEXT_CHARS = 100_000  # of the subject-less text stored in `messages`

# Payload keys that hold addresses, ids and our own notes, never the sender's free text:
# left as they are (a masked address could not be answered).
STRUCTURAL_KEYS = frozenset(
    {
        "version",
        "channel",
        "inbox",
        "message_id",
        "has_message_id",
        "in_reply_to",
        "references",
        "from",
        "reply_to",
        "to",
        "cc",
        "date",
        "envelope",
        "body_source",
        "content_type",
        "no_reply",
        "defects",
        "parse_error",
    }
)


def stored_as_is(key: str) -> bool:
    """Whether a payload key holds no free text (STRUCTURAL_KEYS): never masked."""
    return key in STRUCTURAL_KEYS


def is_arrived(payload: Mapping[str, Any]) -> bool:
    """Whether an email request's message is stored but not read yet."""
    return bool(payload.get(ARRIVED_KEY))


def arrival_params(
    *,
    tenant_id: int,
    raw: bytes,
    message_id: str,
    envelope_from: str,
    envelope_to: list[str],
    correlation_id: str,
    raw_cipher: RawMailCipher | None,
) -> dict[str, Any]:
    """ARRIVAL_SQL's parameters for one message and one tenant. `envelope_from` is the
    reverse-path as given in MAIL FROM ("<>" for a bounce, stored as '')."""
    stored_from = "" if envelope_from == "<>" else envelope_from
    # Sealed under the id as stored: the worker opens the bytes with the stored one.
    message_id = clean_text(message_id)
    params: dict[str, Any] = storable(
        {
            "tenant_id": tenant_id,
            "message_id": message_id,
            "envelope_from": stored_from,
            "envelope_to": envelope_to,
            "size": len(raw),
            "correlation_id": correlation_id,
        }
    )
    return params | {
        "raw": raw_cipher.seal(tenant_id, message_id, raw) if raw_cipher else raw,
        "raw_sealed": raw_cipher is not None,
        "payload": Jsonb({"channel": "email", ARRIVED_KEY: True, "inbox": envelope_to[0]}),
    }


@dataclass(frozen=True)
class ReadEmail:
    """What reading an arrived message made of its request."""

    status: str  # 'received' (to answer), 'ignored' (never answered), 'failed' (unreadable)
    conversation_id: int
    # It named a conversation its sender took no part in, so it started its own
    # (connectors/email/threads.py).
    split: bool


def read_arrived(
    conn: psycopg.Connection[dict[str, Any]],
    request_id: int,
    *,
    cipher: RawMailCipher | None,
    limits: ParseLimits,
    masker: AtRestMasker,
) -> ReadEmail | None:
    """Read the message behind an arrived email request and store what it says; None if
    the request has no arrived message (read already, or not an email)."""
    row = conn.execute(
        # By tenant and Message-ID, the request's external id: the unique key's index.
        """SELECT e.id, e.tenant_id, e.message_id, e.envelope_from, e.envelope_to, e.raw,
                  e.raw_sealed, r.payload
             FROM inbound_requests r
             JOIN email_messages e ON e.tenant_id = r.tenant_id
                  AND e.message_id = r.external_id AND e.direction = 'inbound'
            WHERE r.id = %s AND r.source = 'email' AND e.request_id = r.id""",
        (request_id,),
    ).fetchone()
    if row is None or not is_arrived(row["payload"]):
        return None
    tenant_id, message_id = row["tenant_id"], row["message_id"]
    raw = bytes(row["raw"])
    if row["raw_sealed"]:
        if cipher is None:
            raise RuntimeError("this worker has no key to open the mail the listener sealed")
        raw = cipher.open(tenant_id, message_id, raw)
    try:
        mail = parse_email(raw, limits)
    except Exception as exc:  # parse_email records damage itself; this is a bug's net
        log.exception("email.parse_crashed", size=len(raw))
        mail = unparseable(raw, f"parser crashed: {type(exc).__name__}")
    # The arrival keyed the message (and sealed its bytes) on this id: it stays its id.
    mail = dataclasses.replace(mail, message_id=message_id)
    recipients: list[str] = list(row["envelope_to"])
    envelope_from = row["envelope_from"]
    verdict = never_answer(mail, envelope_from=envelope_from or "<>", own_addresses=recipients)
    payload = request_payload(
        mail,
        inbox=recipients[0],
        envelope_from=envelope_from,
        envelope_to=recipients,
        verdict=verdict,
    )
    # Most mail holds nothing to mask; only what might is read by the detector.
    entities = masked_for_good(policy_of(conn, tenant_id).pii)
    if masker.might_need_detector(payload, entities, skip=stored_as_is):
        payload = masker.mask_deep(payload, entities, skip=stored_as_is)
    if mail.error is not None:
        status, error = "failed", f"unparseable email: {mail.error}"
    elif verdict is not None:
        status, error = "ignored", None
    else:
        status, error = "received", None
    # The payload holds the same subject and text (made storable, and masked).
    subject = payload["subject"]
    fields = conversation_params(tenant_id, mail) | {
        "request_id": request_id,
        "email_id": row["id"],
        "message_id": message_id,
        "status": status,
        "error": error,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references),
        "subject": subject,
        "from_address": mail.sender.address if mail.sender else "",
        "parse_error": mail.error,
        "auto_kind": verdict.kind if verdict else None,
        "text": (payload["text"] or subject)[:MAX_TEXT_CHARS],
        "answerable": status == "received",
    }
    params = storable(fields) | {"payload": Jsonb(payload)}
    read = conn.execute(READ_SQL, params).fetchone()
    assert read is not None  # the final SELECT always returns one row
    return ReadEmail(status, read["conversation_id"], bool(read["split"]))


def seal_stored_raw(conn: psycopg.Connection[Any], cipher: RawMailCipher, batch: int = 200) -> int:
    """Seal the raw bytes of inbound mail stored before raw bytes were sealed; returns how
    many messages. In batches, each row once (`chatops migrate` runs it)."""
    sealed = 0
    while True:
        rows = conn.execute(
            """SELECT id, tenant_id, message_id, raw FROM email_messages
                WHERE direction = 'inbound' AND NOT raw_sealed ORDER BY id LIMIT %s""",
            (batch,),
        ).fetchall()
        if not rows:
            return sealed
        for row_id, tenant_id, message_id, raw in (_fields(r) for r in rows):
            conn.execute(
                """UPDATE email_messages SET raw = %s, raw_sealed = true
                    WHERE id = %s AND NOT raw_sealed""",
                (cipher.seal(tenant_id, message_id, bytes(raw)), row_id),
            )
        sealed += len(rows)


def _fields(row: Any) -> tuple[int, int, str, bytes]:
    if isinstance(row, dict):
        return row["id"], row["tenant_id"], row["message_id"], row["raw"]
    return row[0], row[1], row[2], row[3]
