"""Slack as a source: read a thread and search messages (both read-only).

Only public channels: whoever asks the agent could read those in Slack themselves, so
nothing the bot sees in a private channel or a direct message reaches someone who is
not in it. Search uses Slack's Real-time Search API (`assistant.search.context`), which
AI apps may call with their bot token (scope `search:read.public`) on behalf of an event:
the call carries the `action_token` Slack put on the app_mention or message event that
started the run. slack_sdk has no method for it yet, hence `api_call`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.slack.threads import SlackThread
from connectors.slack.tools import CHANNEL_MENTION
from core.tools import Tool, read_only_tool

log = structlog.get_logger(__name__)

SEARCH_METHOD = "assistant.search.context"
SEARCH_PAGE_SIZE = 20  # Slack's maximum per page
MAX_SEARCH_PAGES = 3
MAX_THREAD_MESSAGES = 100
MAX_TEXT_CHARS = 2_000  # of each message given to the model
ERRORS = {
    "not_in_channel": "the assistant is not in that channel: invite it with /invite first",
    "channel_not_found": "no such channel (or the assistant cannot see it)",
    "thread_not_found": "no such message in that channel",
    "message_not_found": "no such message in that channel",
    "missing_scope": "the Slack app lacks the permission for this: ask an admin to "
    "reinstall it from the current manifest",
    "ratelimited": "Slack is rate limiting us; try again in a minute",
    "invalid_action_token": "Slack search works only while answering a message someone "
    "just sent (its action token is missing or has expired); ask again in a new message",
}


class ReadThread(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="Slack channel id, e.g. C0123ABC")
    thread_ts: str = Field(
        pattern=r"^\d{10}\.\d{6}$", description="The ts of the thread's first message"
    )

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        mention = CHANNEL_MENTION.match(value.strip())
        return mention.group("id") if mention else value.strip()


class SearchMessages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=300, description="Words to find, or a question in plain words"
    )
    limit: int = Field(default=10, ge=1, le=50, description="At most this many messages")


def slack_read_tools(slack_client: Callable[[str], WebClient]) -> list[Tool]:
    return [_read_thread(slack_client), _search_messages(slack_client)]


def read_public_thread(client: WebClient, channel: str, thread_ts: str) -> dict[str, Any]:
    info = client.conversations_info(channel=channel)["channel"]
    if not info.get("is_channel") or info.get("is_private"):
        return {"error": "only threads in public channels can be read"}
    thread = SlackThread(client, channel, thread_ts)
    messages = list(itertools.islice(thread.messages(), MAX_THREAD_MESSAGES + 1))
    read: dict[str, Any] = {
        "channel": channel,
        "thread_ts": thread_ts,
        "messages": [
            {
                "ts": m.ts,
                "author": m.user,
                "is_bot": m.bot_id is not None,
                "text": m.text[:MAX_TEXT_CHARS],
            }
            for m in messages[:MAX_THREAD_MESSAGES]
        ],
    }
    if len(messages) > MAX_THREAD_MESSAGES:
        read["more_messages_not_shown"] = True
    return read


def search_public_messages(
    client: WebClient, query: str, limit: int, action_token: str | None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(MAX_SEARCH_PAGES):
        body: dict[str, Any] = {
            "query": query,
            "channel_types": "public_channel",
            "content_types": "messages",
            "limit": SEARCH_PAGE_SIZE,  # the same every page: a cursor may count pages
        }
        if cursor:
            body["cursor"] = cursor
        if action_token:
            body["action_token"] = action_token
        response = client.api_call(SEARCH_METHOD, json=body)
        for message in (response.get("results") or {}).get("messages") or []:
            found.append(
                {
                    "channel": message.get("channel_id"),
                    "ts": message.get("message_ts"),
                    "author": message.get("author_user_id"),
                    "is_bot": bool(message.get("is_author_bot")),
                    "text": str(message.get("content") or "")[:MAX_TEXT_CHARS],
                    "permalink": message.get("permalink"),
                }
            )
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor or len(found) >= limit:
            break
    return found[:limit]


def _read_thread(slack_client: Callable[[str], WebClient]) -> Tool:
    return read_only_tool(
        "slack_read_thread",
        (
            "Read a thread in a public Slack channel: its first message and the replies, "
            "oldest first."
        ),
        ReadThread,
        lambda context, a: read_public_thread(
            slack_client(context.bot_token), a.channel, a.thread_ts
        ),
        lambda a: f"Read a Slack thread in <#{a.channel}>",
        failures=_slack_result,
    )


def _search_messages(slack_client: Callable[[str], WebClient]) -> Tool:
    return read_only_tool(
        "slack_search_messages",
        (
            "Search messages in the public Slack channels the assistant is in; returns "
            "each message's channel, ts (to read its thread), author, text and link."
        ),
        SearchMessages,
        lambda context, a: {
            "messages": search_public_messages(
                slack_client(context.bot_token), a.query, a.limit, context.action_token
            )
        },
        lambda a: f"Search Slack for {a.query!r}",
        failures=_slack_result,
    )


def _slack_result(tool: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Slack's refusal as words the agent can explain, as connectors/tool_errors.py does."""
    try:
        return call()
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        log.info("connector.read_failed", tool=tool, error=error)
        return {"error": f"Slack: {ERRORS.get(error, error.replace('_', ' '))}"}
