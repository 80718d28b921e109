"""Slack's assistant side panel: a thread opened, or the person moved to another channel.

The listener only stored these events (bot/intake/assistant_listeners.py); here the
worker makes the Web API calls: suggested prompts when a thread opens, and the context
(the channel the person is viewing) kept on the conversation. The thread is recorded as
seen from its start, so its history is never read back from Slack
(bot/agent/thread_history.py).
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg import Connection
from psycopg.types.json import Jsonb
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = structlog.get_logger(__name__)

THREAD_STARTED = "assistant_thread_started"
CONTEXT_CHANGED = "assistant_thread_context_changed"
ASSISTANT_KINDS = frozenset({THREAD_STARTED, CONTEXT_CHANGED})

PROMPTS_TITLE = "Ask me about your company's knowledge, or to get something done:"
SUGGESTED_PROMPTS = (
    {"title": "What can you do?", "message": "What can you help me with, and what can't you do?"},
    {
        "title": "Find an answer",
        "message": "Find what our knowledge base says about our refund policy.",
    },
    {
        "title": "Draft an email",
        "message": "Draft an email to a customer about their renewal (I'll approve it first).",
    },
)


def handle_assistant_event(
    conn: Connection[dict[str, Any]], client: WebClient, request: dict[str, Any]
) -> None:
    """Act on a stored assistant_thread_started / _context_changed request, then close it."""
    tenant_id: int = request["tenant_id"]
    event = request["payload"]["event"]
    assistant_thread = event["assistant_thread"]
    channel, thread_ts = assistant_thread["channel_id"], assistant_thread["thread_ts"]
    context = assistant_thread.get("context") or {}
    conn.execute(
        """INSERT INTO conversations
             (tenant_id, channel_kind, external_key, slack_channel_id, slack_thread_ts,
              history_loaded_at, assistant_context)
           VALUES (%s, 'slack', %s, %s, %s, now(), %s)
           ON CONFLICT (tenant_id, channel_kind, external_key)
             DO UPDATE SET assistant_context = EXCLUDED.assistant_context""",
        (tenant_id, f"{channel}:{thread_ts}", channel, thread_ts, Jsonb(context)),
    )
    if event["type"] == THREAD_STARTED:
        try:
            client.assistant_threads_setSuggestedPrompts(
                channel_id=channel,
                thread_ts=thread_ts,
                title=PROMPTS_TITLE,
                prompts=[dict(prompt) for prompt in SUGGESTED_PROMPTS],
            )
        except SlackApiError as exc:
            # The thread still works without them; nothing a retry would change.
            log.warning("assistant.prompts_failed", error=exc.response.get("error"))
    conn.execute(
        """UPDATE inbound_requests SET status = 'done', finished_at = now()
           WHERE id = %s AND tenant_id = %s""",
        (request["id"], tenant_id),
    )
    log.info("assistant.thread_event", kind=event["type"])
