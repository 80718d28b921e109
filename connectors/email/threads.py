"""Which conversation an email belongs to, from Message-ID, In-Reply-To and References.

A message joins the conversation of the nearest message it answers that we have seen
(in either direction: customers reply to our replies), else of a conversation keyed by
any id it names; otherwise it starts a conversation keyed by its thread's root, the
first id in References (RFC 5322 3.6.4), or its own Message-ID if it answers nothing.
Keying by the root means two replies to a thread we never saw still meet.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from connectors.email.parse import ParsedEmail

# One statement, so it can run inside the store's single atomic statement: the nearest
# known message wins, then a conversation keyed by any of the ids; else one is created.
# %(ids)s is the lookup order (nearest first), %(root)s the key of a new conversation.
CONVERSATION_CTE = """
known AS (
    SELECT id FROM (
        SELECT conversation_id AS id, array_position(%(ids)s::text[], message_id) AS rank
          FROM email_messages
         WHERE tenant_id = %(tenant_id)s AND message_id = ANY(%(ids)s::text[])
           AND conversation_id IS NOT NULL
        UNION ALL
        SELECT id, 1000000 + array_position(%(ids)s::text[], external_key)
          FROM conversations
         WHERE tenant_id = %(tenant_id)s AND channel_kind = 'email'
           AND external_key = ANY(%(ids)s::text[])
    ) candidates
    ORDER BY rank LIMIT 1
),
created AS (
    INSERT INTO conversations (tenant_id, channel_kind, external_key)
    SELECT %(tenant_id)s, 'email', %(root)s WHERE NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT (tenant_id, channel_kind, external_key)
        DO UPDATE SET external_key = EXCLUDED.external_key
    RETURNING id
),
conversation AS (SELECT id FROM known UNION ALL SELECT id FROM created)
"""


def lookup_ids(mail: ParsedEmail) -> list[str]:
    """Ids to look for, nearest first; the message's own id last (a resent copy)."""
    return [*mail.thread_ids, mail.message_id]


def thread_root(mail: ParsedEmail) -> str:
    if mail.references:
        return mail.references[0]
    return mail.in_reply_to or mail.message_id


def conversation_params(tenant_id: int, mail: ParsedEmail) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "ids": lookup_ids(mail), "root": thread_root(mail)}


def start_conversation(conn: Connection[dict[str, Any]], tenant_id: int, message_id: str) -> int:
    """The conversation of a new outbound thread, keyed by its first Message-ID."""
    row = conn.execute(
        """INSERT INTO conversations (tenant_id, channel_kind, external_key)
           VALUES (%s, 'email', %s)
           ON CONFLICT (tenant_id, channel_kind, external_key)
             DO UPDATE SET external_key = EXCLUDED.external_key
           RETURNING id""",
        (tenant_id, message_id),
    ).fetchone()
    assert row is not None
    conversation_id: int = row["id"]
    return conversation_id
