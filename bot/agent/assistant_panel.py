"""Slack's assistant side panel: a thread opened, the person moved to another channel,
and a question asked in a panel thread.

The listener only stored the panel's events (bot/intake/assistant_listeners.py); here the
worker makes the Web API calls: suggested prompts when a thread opens, and the context
(the channel the person is viewing) kept on the conversation. The thread is recorded as
seen from its start, so its history is never read back from Slack
(bot/agent/thread_history.py). For a question in a panel thread, `prepare_panel_turn`
titles the thread after its first question and tells the model which channel the person
is looking at.
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg import Connection
from psycopg.types.json import Jsonb
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.agent.prompts import Turn, viewing_channel_turn
from core.store import requests

log = structlog.get_logger(__name__)

THREAD_STARTED = "assistant_thread_started"
CONTEXT_CHANGED = "assistant_thread_context_changed"
ASSISTANT_KINDS = frozenset({THREAD_STARTED, CONTEXT_CHANGED})

TITLE_CHARS = 60  # the panel's thread list shows about this much of a title
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
             DO UPDATE SET assistant_context = EXCLUDED.assistant_context,
               -- The app sees every message of a panel thread from its start, whichever
               -- job recorded the conversation first: its history is never read back.
               history_loaded_at = coalesce(conversations.history_loaded_at, now())""",
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
    requests.finish(conn, request["id"], "done", tenant_id=tenant_id)
    log.info("assistant.thread_event", kind=event["type"])


def prepare_panel_turn(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    *,
    tenant_id: int,
    conversation_id: int,
    channel: str,
    thread_ts: str,
    question: str,
    history: list[Turn],
) -> list[Turn]:
    """For a question in a panel thread: name the thread after it if it is the first
    (no earlier turns), and return `history` led by the channel the person is viewing.
    Any other thread's history is returned as it is."""
    row = conn.execute(
        "SELECT assistant_context FROM conversations WHERE id = %s AND tenant_id = %s",
        (conversation_id, tenant_id),
    ).fetchone()
    if row is None or row["assistant_context"] is None:
        return history  # not a panel thread (a plain DM, a channel)
    if not history:
        try:
            client.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=thread_title(question)
            )
        except SlackApiError as exc:
            # A title is a nicety: the answer matters more, and no retry would change it.
            log.warning("assistant.title_failed", error=exc.response.get("error"))
    viewing = row["assistant_context"].get("channel_id")
    if not viewing:
        return history
    return [viewing_channel_turn(viewing, _channel_name(client, viewing)), *history]


def thread_title(question: str) -> str:
    """The question's first line, cut at a word to fit the panel's thread list."""
    first_line = next((line.strip() for line in question.splitlines() if line.strip()), "")
    if len(first_line) <= TITLE_CHARS:
        return first_line or "New chat"
    cut = first_line[: TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return f"{cut}…"


def _channel_name(client: WebClient, channel_id: str) -> str | None:
    """The channel's name, or None when the app may not see it (a private channel it is
    not in): the model then gets the id alone."""
    try:
        info = client.conversations_info(channel=channel_id)
    except SlackApiError as exc:
        log.info("assistant.context_channel_unknown", error=exc.response.get("error"))
        return None
    name = (info.get("channel") or {}).get("name")
    return str(name) if name else None
