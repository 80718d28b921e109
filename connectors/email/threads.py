"""Which conversation an email belongs to, from Message-ID, In-Reply-To and References.

A message joins the conversation of the nearest message it answers that we have seen
(in either direction: customers reply to our replies), else of a conversation keyed by
any id it names; otherwise it starts a conversation keyed by its thread's root, the
first id in References (RFC 5322 3.6.4), or its own Message-ID if it answers nothing.
Keying by the root means two replies to a thread we never saw still meet.

Naming a thread is not enough to join it: Message-IDs travel in quoted mail and
forwarded headers, and whoever joins a conversation has its earlier mail drafted into
their reply. So a message joins only a conversation its sender took part in (wrote to
us in it, or was written to by us), or, when the tenant chose `domain`
(`tenant_settings.email_thread_scope`), one someone at the sender's domain took part in.
Otherwise it starts a conversation of its own ("split"), keyed so that no Message-ID
can ever name it: `split:` and its own Message-ID.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from connectors.email.inboxes import domain_of, normalize_address
from connectors.email.parse import ParsedEmail

SPLIT_PREFIX = "split:"  # normalised Message-IDs start with "<", so no id collides

# One statement, so it can run inside the store's single atomic statement: the nearest
# known conversation the sender took part in wins; else one is created.
# %(ids)s is the lookup order (nearest first), %(root)s the key of a new conversation,
# %(sender)s / %(sender_domain)s who is asking to join, %(own_key)s the message's own id.
CONVERSATION_CTE = """
scope AS (
    SELECT coalesce((SELECT email_thread_scope FROM tenant_settings
                      WHERE tenant_id = %(tenant_id)s), 'sender') AS value
),
candidates AS (
    SELECT id, min(rank) AS rank FROM (
        SELECT conversation_id AS id, array_position(%(ids)s::text[], message_id) AS rank
          FROM email_messages
         WHERE tenant_id = %(tenant_id)s AND message_id = ANY(%(ids)s::text[])
           AND conversation_id IS NOT NULL
        UNION ALL
        SELECT id, 1000000 + array_position(%(ids)s::text[], external_key)
          FROM conversations
         WHERE tenant_id = %(tenant_id)s AND channel_kind = 'email'
           AND external_key = ANY(%(ids)s::text[])
    ) found GROUP BY id
),
known AS (
    SELECT c.id FROM candidates c, scope
     WHERE %(sender)s <> '' AND EXISTS (
        SELECT 1 FROM email_messages m,
               unnest(CASE WHEN m.direction = 'inbound' THEN ARRAY[m.from_address]
                           ELSE m.envelope_to END) AS took_part(address)
         WHERE m.tenant_id = %(tenant_id)s AND m.conversation_id = c.id
           AND CASE WHEN scope.value = 'domain'
                    THEN split_part(lower(took_part.address), '@', 2) = %(sender_domain)s
                    ELSE lower(took_part.address) = %(sender)s END)
     ORDER BY c.rank LIMIT 1
),
created AS (
    INSERT INTO conversations (tenant_id, channel_kind, external_key)
    SELECT %(tenant_id)s, 'email',
           CASE WHEN EXISTS (SELECT 1 FROM candidates)
                THEN %(split_key)s ELSE %(root)s END
     WHERE NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT (tenant_id, channel_kind, external_key)
        DO UPDATE SET external_key = EXCLUDED.external_key
    RETURNING id
),
conversation AS (SELECT id FROM known UNION ALL SELECT id FROM created),
split AS (
    SELECT EXISTS (SELECT 1 FROM candidates) AND NOT EXISTS (SELECT 1 FROM known) AS value
)
"""


def lookup_ids(mail: ParsedEmail) -> list[str]:
    """Ids to look for, nearest first; the message's own id last (a resent copy)."""
    return [*mail.thread_ids, mail.message_id]


def thread_root(mail: ParsedEmail) -> str:
    if mail.references:
        return mail.references[0]
    return mail.in_reply_to or mail.message_id


def conversation_params(tenant_id: int, mail: ParsedEmail) -> dict[str, Any]:
    sender = normalize_address(mail.sender.address) if mail.sender is not None else ""
    return {
        "tenant_id": tenant_id,
        "ids": lookup_ids(mail),
        "root": thread_root(mail),
        "sender": sender,
        "sender_domain": domain_of(sender) if "@" in sender else "",
        "split_key": SPLIT_PREFIX + mail.message_id,
    }


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
