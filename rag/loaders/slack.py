"""Slack channel history through the Web API (conversations.history, then
conversations.replies for threads): one document per channel per day (UTC), with each
thread's replies under the message that started it.

Messages from bots are left out: the bot's own answers are not a source of truth, and
ingesting them would let it cite itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from rag.documents import Block, Document, LoadError

PAGE_SIZE = 200  # messages per page, Slack's recommended maximum
SKIPPED_SUBTYPES = frozenset(
    {"channel_join", "channel_leave", "channel_topic", "channel_purpose", "bot_message"}
)


def channel_key_prefix(team_id: str, channel_id: str) -> str:
    return f"slack://{team_id}/{channel_id}/"


def load_channel(client: WebClient, team_id: str, channel_id: str) -> list[Document]:
    try:
        info = client.conversations_info(channel=channel_id)
        name = (info.get("channel") or {}).get("name") or channel_id
        # (thread start, message time, block): sorted so a day reads oldest first, each
        # thread's replies right under the message that started it.
        days: dict[str, list[tuple[float, float, Block]]] = defaultdict(list)
        first_ts: dict[str, str] = {}
        for message in _paged(client, "conversations_history", channel=channel_id):
            if not _is_human(message):
                continue
            day = _day(message["ts"])
            first_ts[day] = min(first_ts.get(day, message["ts"]), message["ts"], key=float)
            heading = (f"#{name}", day)
            root = float(message["ts"])
            days[day].append((root, root, Block(heading, _line(message))))
            if message.get("reply_count"):
                replies = _paged(
                    client, "conversations_replies", channel=channel_id, ts=message["ts"]
                )
                for reply in replies:
                    if reply["ts"] != message["ts"] and _is_human(reply):
                        block = Block(heading, "↳ " + _line(reply))
                        days[day].append((root, float(reply["ts"]), block))
        documents = []
        for day in sorted(days):
            blocks = tuple(block for _, _, block in sorted(days[day], key=lambda e: e[:2]))
            link = client.chat_getPermalink(channel=channel_id, message_ts=first_ts[day])
            documents.append(
                Document(
                    f"{channel_key_prefix(team_id, channel_id)}{day}",
                    "slack",
                    f"#{name} on {day}",
                    blocks,
                    url=link.get("permalink"),
                    metadata={"format": "slack", "channel": channel_id},
                )
            )
        return documents
    except SlackApiError as exc:
        raise LoadError(f"Slack refused {channel_id}: {exc.response.get('error')}") from None


def _paged(client: WebClient, method: str, **params: Any) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        response = getattr(client, method)(limit=PAGE_SIZE, cursor=cursor, **params)
        yield from response.get("messages") or []
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return


def _is_human(message: dict[str, Any]) -> bool:
    return (
        not message.get("bot_id")
        and message.get("subtype") not in SKIPPED_SUBTYPES
        and bool((message.get("text") or "").strip())
    )


def _line(message: dict[str, Any]) -> str:
    return f"<@{message.get('user', 'unknown')}>: {message.get('text', '').strip()}"


def _day(ts: str) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d")
