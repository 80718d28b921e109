"""Reading what a summary is made of, as the asker may see it.

- Visibility: a channel is summarised only when the bot is in it and so is the asker,
  and a private channel's content is never summarised where people outside it could
  read the answer (`refusal`).
- A thread is read whole (conversations.replies). A channel is read from the since-date
  (conversations.history, oldest=…), incrementally: the messages read are stored, masked
  as all stored text is (guardrails/at_rest.py), with the span read without a gap, so the
  next summary of that channel asks Slack only for newer messages. The replies of its
  latest threads in that window are read the same way, each thread from its newest
  stored reply on. Slack rate-limits
  history reads hard; the Web client waits out a 429 for its Retry-After a bounded
  number of times (connectors/slack/web_client.py), and one summary reads a bounded
  number of pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from psycopg import Connection
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from guardrails.at_rest import for_storage

log = structlog.get_logger(__name__)

PAGE_SIZE = 200
MAX_PAGES = 10  # per read: 2,000 messages, at most ten history calls for one summary
MAX_THREADS = 10  # threads of a channel whose new replies one summary reads, latest first
# Messages that are not something a person said.
SKIPPED_SUBTYPES = frozenset(
    {"channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name"}
)


@dataclass(frozen=True)
class ChannelMessage:
    ts: str
    user: str  # a Slack user id, "" when unknown
    text: str  # masked for good as stored text is
    reply_count: int = 0
    thread_ts: str | None = None  # a reply in a channel's thread: its parent's ts


def refusal(client: WebClient, *, channel: str, asker: str, reply_channel: str) -> str | None:
    """Why ``channel`` may not be summarised for ``asker`` in ``reply_channel``, in words
    for the asker; None when it may. The channel is named as a Slack reference, which each
    reader's Slack shows only as far as they may see it."""
    ref = f"<#{channel}>"
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        if exc.response.get("error") in ("channel_not_found", "not_in_channel"):
            return f"I can't see {ref}, so I can't summarise it."
        raise
    if not info.get("is_member"):
        return (
            f"I'm not a member of {ref}, so I can't read it. Invite me there "
            "(`/invite @chatops`) and ask again."
        )
    if not is_member(client, channel, asker):
        return f"You're not a member of {ref}, so I won't summarise it for you."
    if channel == reply_channel:
        return None  # everyone who reads the answer can read the channel
    private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
    where = _info(client, reply_channel)
    if where is not None and where.get("is_im") and where.get("user") in (asker, None):
        return None  # the asker's direct messages with the app, the panel's threads too
    if private:
        return (
            f"{ref} is private, so I won't summarise it here where people outside it could "
            "read it. Ask me in a direct message or in my assistant panel instead."
        )
    if where is None or (where.get("is_ext_shared") and not info.get("is_ext_shared")):
        return (
            "This channel is shared with people outside your organisation, so I won't "
            f"summarise {ref} here. Ask me in a direct message or in my assistant panel."
        )
    return None


def is_member(client: WebClient, channel: str, user: str) -> bool:
    cursor: str | None = None
    for _ in range(50):  # 5,000 members at most; a larger channel is public in practice
        response = client.conversations_members(channel=channel, limit=100, cursor=cursor)
        if user in (response.get("members") or []):
            return True
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
    return False


def _info(client: WebClient, channel: str) -> dict[str, Any] | None:
    """conversations.info's channel, or None when Slack would not say."""
    try:
        info: dict[str, Any] = client.conversations_info(channel=channel)["channel"]
    except SlackApiError:
        return None
    return info


def thread_messages(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    *,
    channel: str,
    thread_ts: str,
    skip_ts: frozenset[str] = frozenset(),
    bot_id: str | None = None,
) -> list[ChannelMessage]:
    """A thread's messages, oldest first, but for the app's own and those in ``skip_ts``
    (the request itself)."""
    raw: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = client.conversations_replies(
            channel=channel, ts=thread_ts, limit=PAGE_SIZE, cursor=cursor
        )
        raw.extend(response.get("messages") or [])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    kept = [m for m in raw if _said(m, bot_id) and m["ts"] not in skip_ts]
    return _masked(conn, tenant_id, kept)


def channel_messages(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    *,
    channel: str,
    since: datetime,
    bot_id: str | None = None,
) -> list[ChannelMessage]:
    """The channel's top-level messages since ``since``, oldest first: from what the app
    stored when the span it read covers ``since``, and from Slack for anything newer."""
    oldest = Decimal(str(since.timestamp()))
    span = conn.execute(
        """SELECT oldest_ts, newest_ts FROM slack_read_spans
           WHERE tenant_id = %s AND channel_id = %s""",
        (tenant_id, channel),
    ).fetchone()
    covered = span is not None and span["oldest_ts"] <= oldest
    read_from = span["newest_ts"] if covered and span is not None else oldest
    fetched, complete = _history(client, channel, read_from)
    kept = [m for m in fetched if _said(m, bot_id)]
    fresh = _masked(conn, tenant_id, kept)
    newest = max([read_from, *(Decimal(m["ts"]) for m in fetched)])
    with conn.transaction():
        _store(conn, tenant_id, channel, fresh)
        span_oldest = span["oldest_ts"] if covered and span is not None else oldest
        if not complete:
            # Only the newest pages were read: the span starts at the oldest of them.
            span_oldest = min(Decimal(m["ts"]) for m in fetched)
        conn.execute(
            """INSERT INTO slack_read_spans (tenant_id, channel_id, oldest_ts, newest_ts)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (tenant_id, channel_id) DO UPDATE
                 SET oldest_ts = EXCLUDED.oldest_ts, newest_ts = EXCLUDED.newest_ts,
                     updated_at = now()""",
            (tenant_id, channel, span_oldest, newest),
        )
    log.info("summary.history_read", fetched=len(fetched), from_store=covered)
    parents = conn.execute(
        """SELECT ts FROM slack_read_messages
           WHERE tenant_id = %s AND channel_id = %s AND thread_ts IS NULL AND ts_num > %s
             AND reply_count > 0
           ORDER BY ts_num DESC LIMIT %s""",
        (tenant_id, channel, oldest, MAX_THREADS),
    ).fetchall()
    for parent in parents:
        _read_replies(conn, client, tenant_id, channel, parent["ts"], bot_id)
    rows = conn.execute(
        """SELECT ts, user_id, text, reply_count, thread_ts FROM slack_read_messages
           WHERE tenant_id = %s AND channel_id = %s AND ts_num > %s
             AND (thread_ts IS NULL OR thread_ts = ANY(%s))
           ORDER BY coalesce(thread_ts, ts)::numeric, ts_num""",
        (tenant_id, channel, oldest, [p["ts"] for p in parents]),
    ).fetchall()
    return [
        ChannelMessage(r["ts"], r["user_id"], r["text"], r["reply_count"], r["thread_ts"])
        for r in rows
    ]


def _read_replies(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    channel: str,
    parent_ts: str,
    bot_id: str | None,
) -> None:
    """Store the thread's replies newer than those stored already."""
    row = conn.execute(
        """SELECT max(ts_num) AS newest FROM slack_read_messages
           WHERE tenant_id = %s AND channel_id = %s AND thread_ts = %s""",
        (tenant_id, channel, parent_ts),
    ).fetchone()
    newest = row["newest"] if row and row["newest"] is not None else Decimal(parent_ts)
    replies: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = client.conversations_replies(
            channel=channel, ts=parent_ts, oldest=str(newest), limit=PAGE_SIZE, cursor=cursor
        )
        # The parent always leads the first page, whatever the oldest asked for.
        replies.extend(m for m in response.get("messages") or [] if m["ts"] != parent_ts)
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    fresh = [m for m in replies if _said(m, bot_id) and Decimal(m["ts"]) > newest]
    with conn.transaction():
        _store(conn, tenant_id, channel, _masked(conn, tenant_id, fresh), thread_ts=parent_ts)


def _store(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    channel: str,
    messages: list[ChannelMessage],
    thread_ts: str | None = None,
) -> None:
    for message in messages:
        conn.execute(
            """INSERT INTO slack_read_messages
                 (tenant_id, channel_id, ts, ts_num, user_id, text, reply_count, thread_ts)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (tenant_id, channel_id, ts) DO UPDATE
                 SET text = EXCLUDED.text, reply_count = EXCLUDED.reply_count,
                     read_at = now()""",
            (
                tenant_id,
                channel,
                message.ts,
                Decimal(message.ts),
                message.user,
                message.text,
                message.reply_count,
                thread_ts,
            ),
        )


def _history(client: WebClient, channel: str, oldest: Decimal) -> tuple[list[dict[str, Any]], bool]:
    """The messages after ``oldest``, and whether that is all of them (False: the page
    limit was reached, and only the newest were read)."""
    messages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = client.conversations_history(
            channel=channel, oldest=str(oldest), limit=PAGE_SIZE, cursor=cursor
        )
        messages.extend(response.get("messages") or [])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return messages, True
    log.warning("summary.history_capped", pages=MAX_PAGES)
    return messages, False


def _said(message: dict[str, Any], bot_id: str | None) -> bool:
    if message.get("subtype") in SKIPPED_SUBTYPES:
        return False
    if bot_id is not None and message.get("bot_id") == bot_id:
        return False  # the app's own replies and notices
    return bool((message.get("text") or "").strip())


def _masked(
    conn: Connection[dict[str, Any]], tenant_id: int, messages: list[dict[str, Any]]
) -> list[ChannelMessage]:
    texts = for_storage(conn, tenant_id, [m.get("text") or "" for m in messages])
    return sorted(
        (
            ChannelMessage(
                ts=m["ts"],
                user=m.get("user") or "",
                text=text,
                reply_count=int(m.get("reply_count") or 0),
            )
            for m, text in zip(messages, texts, strict=True)
        ),
        key=lambda m: Decimal(m.ts),
    )


READ_RETENTION_DAYS = 30  # channel messages read for summaries are kept this long


def forget_old_reads(conn: Connection[dict[str, Any]], days: int = READ_RETENTION_DAYS) -> int:
    """Delete stored channel messages posted more than ``days`` ago (every tenant), and
    start each span read where what is kept starts; the number of messages deleted."""
    cutoff = conn.execute(
        "SELECT extract(epoch FROM now() - make_interval(days => %s))::numeric AS cutoff",
        (days,),
    ).fetchone()
    assert cutoff is not None
    with conn.transaction():
        deleted = conn.execute(
            "DELETE FROM slack_read_messages WHERE ts_num < %s", (cutoff["cutoff"],)
        ).rowcount
        conn.execute(
            "UPDATE slack_read_spans SET oldest_ts = %s WHERE oldest_ts < %s",
            (cutoff["cutoff"], cutoff["cutoff"]),
        )
        # A span that ended before the cutoff covers nothing kept: read afresh next time.
        conn.execute("DELETE FROM slack_read_spans WHERE newest_ts < oldest_ts")
    return deleted
