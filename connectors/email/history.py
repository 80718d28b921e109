"""An email thread's earlier messages as the agent's history, oldest first."""

from __future__ import annotations

from typing import Any

from psycopg import Connection

HISTORY_TURNS = 20


def thread_history(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    conversation_id: int,
    *,
    before_message_id: str,
    limit: int = HISTORY_TURNS,
) -> list[dict[str, str]]:
    """Turns ({"role", "content"}) before the message being answered.

    Inbound mail is written to `messages` (role 'user', new text only) when it is
    stored, and each sent reply (role 'assistant') when it is sent, so quoted history
    inside the mails is not needed and not repeated.
    """
    rows = conn.execute(
        """SELECT role, text FROM (
               SELECT role, text, created_at, id FROM messages
                WHERE tenant_id = %s AND conversation_id = %s AND external_id <> %s
                  AND created_at <= (
                      SELECT COALESCE(max(created_at), now()) FROM messages
                       WHERE tenant_id = %s AND conversation_id = %s AND external_id = %s)
                ORDER BY created_at DESC, id DESC LIMIT %s
           ) recent ORDER BY created_at, id""",
        (
            tenant_id,
            conversation_id,
            before_message_id,
            tenant_id,
            conversation_id,
            before_message_id,
            limit,
        ),
    ).fetchall()
    return [{"role": row["role"], "content": row["text"]} for row in rows]
