"""A summary as the person reads it in Slack: grouped sections, each item ending with
links to the messages it cites (Slack permalinks), people as Slack mentions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.summaries.reading import ChannelMessage
from bot.summaries.summarise import ChannelSummary, SummaryItem

log = structlog.get_logger(__name__)

SECTIONS = (
    ("decisions", ":white_check_mark: *Decisions*"),
    ("open_questions", ":question: *Open questions*"),
    ("action_items", ":pushpin: *Action items*"),
)
NOTHING_FOUND = "Nobody made a decision, left a question open or took on a task here."
MAX_LINKS = 4  # per item: enough to find the discussion, short enough to read


def render(
    client: WebClient,
    channel: str,
    summary: ChannelSummary,
    messages: Sequence[ChannelMessage],
    *,
    heading: str,
    zone: ZoneInfo,
) -> str:
    links = _Permalinks(client, channel)
    parts = [heading]
    if summary.overview:
        parts.append(summary.overview)
    sections = []
    for name, title in SECTIONS:
        items: list[SummaryItem] = getattr(summary, name)
        if items:
            lines = [f"• {_item(item, messages, links, zone)}" for item in items]
            sections.append("\n".join([title, *lines]))
    parts.extend(sections or [NOTHING_FOUND])
    return "\n\n".join(parts)


def _item(
    item: SummaryItem, messages: Sequence[ChannelMessage], links: _Permalinks, zone: ZoneInfo
) -> str:
    cited = [messages[n - 1] for n in item.messages[:MAX_LINKS]]
    refs = [links.link(m, zone) for m in cited]
    shown = [ref for ref in refs if ref]
    return f"{item.text} ({', '.join(shown)})" if shown else item.text


class _Permalinks:
    """chat.getPermalink, once per cited message."""

    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.found: dict[str, str | None] = {}

    def link(self, message: ChannelMessage, zone: ZoneInfo) -> str | None:
        if message.ts not in self.found:
            try:
                response = self.client.chat_getPermalink(
                    channel=self.channel, message_ts=message.ts
                )
                self.found[message.ts] = response.get("permalink")
            except SlackApiError as exc:
                # The message was deleted since: the item stands without its link.
                log.warning("summary.permalink_failed", error=exc.response.get("error"))
                self.found[message.ts] = None
        url = self.found[message.ts]
        if not url:
            return None
        when = datetime.fromtimestamp(float(message.ts), UTC).astimezone(zone)
        return f"<{url}|{when:%a %H:%M}>"
