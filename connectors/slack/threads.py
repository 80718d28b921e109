"""Reading and writing one Slack thread: the bot's side of a conversation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

PAGE_SIZE = 200  # messages per conversations.replies page
MAX_TEXT = 39_000  # Slack truncates message text past 40,000 characters


@dataclass(frozen=True)
class ThreadMessage:
    ts: str
    user: str
    text: str
    bot_id: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class SlackThread:
    client: WebClient
    channel: str
    thread_ts: str

    def messages(self, *, with_metadata: bool = False) -> Iterator[ThreadMessage]:
        cursor: str | None = None
        while True:
            response = self.client.conversations_replies(
                channel=self.channel,
                ts=self.thread_ts,
                limit=PAGE_SIZE,
                cursor=cursor,
                include_all_metadata=with_metadata,
            )
            for message in response.get("messages") or []:
                yield ThreadMessage(
                    ts=message["ts"],
                    user=message.get("user") or message.get("bot_id") or "",
                    text=message.get("text") or "",
                    bot_id=message.get("bot_id"),
                    metadata=message.get("metadata"),
                )
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def find_by_metadata(self, event_type: str, key: str, value: object) -> str | None:
        """The ts of a message we posted and tagged, if it is in the thread."""
        for message in self.messages(with_metadata=True):
            metadata = message.metadata or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and payload.get(key) == value:
                return message.ts
        return None

    def post(self, text: str, *, metadata: dict[str, Any] | None = None) -> str:
        response = self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=text[:MAX_TEXT],
            metadata=metadata,
            unfurl_links=False,
        )
        ts: str = response["ts"]
        return ts

    def update(
        self,
        ts: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.client.chat_update(
            channel=self.channel, ts=ts, text=text[:MAX_TEXT], blocks=blocks, metadata=metadata
        )
