"""A thread's earlier turns, from what the app has stored rather than from Slack.

Slack limits `conversations.replies` for many apps, and re-reading a whole thread on every
turn is slow anyway. Every turn the bot takes part in is stored in `messages` (the
person's message and the bot's reply, by `run_request._finish`), so a thread the bot has
been in from its start needs nothing from Slack. Only when the bot joins a thread it has
not seen (mentioned mid-thread) is the thread read, once, and what was read stored.

A conversation's `history_loaded_at` marks that its earlier messages are all stored.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import structlog
from psycopg import Connection

from bot.agent.prompts import Turn
from connectors.slack.threads import SlackThread
from guardrails.at_rest import for_storage, policy_of

log = structlog.get_logger(__name__)

HISTORY_TURNS = 20  # earlier thread messages given to the model
MENTION = re.compile(r"<@[A-Z0-9]+>")


def earlier_turns(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    conversation_id: int,
    thread: SlackThread,
    *,
    before_ts: str,
    bot_ids: Collection[str | None],
    skip_texts: Collection[str] = (),
) -> list[Turn]:
    """The turns of the thread before the message at ``before_ts``, oldest first.

    ``bot_ids`` mark the bot's own messages when the thread has to be read from Slack;
    ``skip_texts`` are messages that are not turns (the "working on it" placeholder).
    """
    if not _loaded(conn, tenant_id, conversation_id):
        if thread.thread_ts != before_ts:
            # Mentioned in a thread the bot has not been part of: read it this once.
            _store_from_slack(conn, tenant_id, conversation_id, thread, before_ts, bot_ids)
        mark_loaded(conn, tenant_id, conversation_id)
    rows = conn.execute(
        """SELECT role, text, external_id FROM messages
           WHERE tenant_id = %s AND conversation_id = %s""",
        (tenant_id, conversation_id),
    ).fetchall()
    before = float(before_ts)
    earlier = sorted(
        (row for row in rows if _ts(row["external_id"]) < before and row["text"]),
        key=lambda row: _ts(row["external_id"]),
    )
    turns: list[Turn] = [
        {"role": row["role"], "content": MENTION.sub("", row["text"]).strip()}
        for row in earlier
        if row["text"] not in skip_texts
    ]
    return turns[-HISTORY_TURNS:]


def mark_loaded(conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int) -> None:
    conn.execute(
        """UPDATE conversations SET history_loaded_at = now()
           WHERE id = %s AND tenant_id = %s AND history_loaded_at IS NULL""",
        (conversation_id, tenant_id),
    )


def _loaded(conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int) -> bool:
    row = conn.execute(
        "SELECT history_loaded_at FROM conversations WHERE id = %s AND tenant_id = %s",
        (conversation_id, tenant_id),
    ).fetchone()
    return row is not None and row["history_loaded_at"] is not None


def _store_from_slack(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    conversation_id: int,
    thread: SlackThread,
    before_ts: str,
    bot_ids: Collection[str | None],
) -> None:
    before = float(before_ts)
    policy = policy_of(conn, tenant_id)  # what it masks for good is never stored in clear
    rows = [
        (
            tenant_id,
            conversation_id,
            "assistant" if message.bot_id in bot_ids else "user",
            message.user,
            for_storage(conn, tenant_id, message.text, policy),
            message.ts,
        )
        for message in thread.messages()
        if message.text and float(message.ts) < before
    ]
    with conn.cursor() as cursor:
        # A message stored already (by its turn) keeps what was stored then.
        cursor.executemany(
            """INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (conversation_id, external_id) DO NOTHING""",
            rows,
        )
    log.info("thread.history_read_from_slack", messages=len(rows))


def _ts(external_id: str) -> float:
    try:
        return float(external_id)
    except ValueError:
        return float("inf")  # not a Slack ts: never "earlier"
