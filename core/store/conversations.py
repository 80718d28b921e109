"""Conversations: a Slack thread or an email thread the bot takes part in, and its runs.

Only what the listeners ask before queueing lives here so far; the agent's own reads and
writes of conversations stay next to the code that needs them until they move here too.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

ANSWERED_IN_THREAD = """
    SELECT 1 FROM conversations c JOIN agent_runs r ON r.conversation_id = c.id
    WHERE c.tenant_id = %s AND c.channel_kind = 'slack' AND c.external_key = %s
    LIMIT 1
"""


def slack_thread_key(channel: str, thread_ts: str) -> str:
    """How a Slack thread is named among a tenant's conversations."""
    return f"{channel}:{thread_ts}"


async def bot_has_run_in_slack_thread(
    conn: AsyncConnection[Any], tenant_id: int, channel: str, thread_ts: str
) -> bool:
    """Whether the bot has run (answered, or tried to) in this Slack thread."""
    cursor = await conn.execute(
        ANSWERED_IN_THREAD, (tenant_id, slack_thread_key(channel, thread_ts))
    )
    return await cursor.fetchone() is not None
