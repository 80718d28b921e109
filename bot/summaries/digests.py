"""Scheduled summaries: a channel's digest posted daily (or on weekdays) at a time of day
in the workspace's time zone, to a channel or to the person who asked for it.

One periodic task (bot/queue/periodic.py, `summary_digests`) looks for digests whose
due time has come and claims each: one conditional UPDATE moves its ``next_due_at`` to
the next due time only if it still holds the due time that was read, so with any number
of workers, and sweeps racing, a due time is claimed once. The claim queues a job
(`send_digest`), so the model calls of a long channel never hold up the other periodic
work; the job records the due time it posted (``sent_for``), so a retried or redelivered
job does not post it again. (A worker killed between posting and recording it would.)

Visibility is checked again at every due time, as for a summary on request: the bot and
the person who set the digest up must still be in the channel, and a private channel's
digest goes only to that channel or to that person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from psycopg import Connection

from bot.agent.runs import WorkerDeps, usage_recorder
from bot.summaries import reading
from bot.summaries.job import NO_MODEL, time_zone, write_summary
from connectors.slack.bot_tokens import with_bot_token
from core.digest_schedule import next_due
from core.store import digests

log = structlog.get_logger(__name__)

BATCH = 20  # digests written per sweep at most; the rest are next
FIRST_WINDOW = timedelta(hours=24)  # a digest's first read, with nothing sent before


@dataclass(frozen=True)
class Sent:
    digest_id: int
    posted: bool
    reason: str | None = None


def claim_due_digests(
    conn: Connection[dict[str, Any]], enqueue: Callable[[int, int], None]
) -> list[int]:
    """Claim every digest that is due and that no other worker claimed first, and queue
    each (``enqueue(digest_id, due in Unix microseconds)``); the ids claimed."""
    claimed_ids: list[int] = []
    for row in digests.due(conn, BATCH):
        zone = time_zone(conn, row["tenant_id"])
        following = next_due(digests.database_now(conn), row["at_time"], zone, row["cadence"])
        if not digests.claim(conn, row["id"], row["next_due_at"], following):
            continue  # another worker has this due time
        enqueue(row["id"], int(row["next_due_at"].timestamp() * 1_000_000))
        claimed_ids.append(row["id"])
    return claimed_ids


def send_digest(
    conn: Connection[dict[str, Any]], deps: WorkerDeps, digest_id: int, due_micros: int
) -> Sent:
    """Write and post digest ``digest_id`` for the due time claimed, unless it was posted
    already (a retried job) or removed since."""
    due = datetime.fromtimestamp(due_micros / 1_000_000, UTC)
    row = digests.to_send(conn, digest_id)
    if row is None:
        return Sent(digest_id, False, "removed")
    if row["sent_for"] is not None and abs((row["sent_for"] - due).total_seconds()) < 1:
        return Sent(digest_id, False, "already posted")
    unsealed = with_bot_token(row)
    assert unsealed is not None  # given a row, a row
    structlog.contextvars.bind_contextvars(tenant_id=row["tenant_id"], digest_id=digest_id)
    try:
        return _send(conn, deps, unsealed, digests.database_now(conn), due)
    finally:
        structlog.contextvars.unbind_contextvars("tenant_id", "digest_id")


def _send(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    row: dict[str, Any],
    now: datetime,
    due: datetime,
) -> Sent:
    tenant_id, channel = row["tenant_id"], row["channel_id"]
    client = deps.slack_client(row["bot_token"])
    # A personal digest is read by its owner alone; any other goes where others read it.
    reply_channel = channel if row["personal"] else row["deliver_to"]
    refused = reading.refusal(
        client, channel=channel, asker=row["created_by"], reply_channel=reply_channel
    )
    if refused is not None:
        log.warning("digest.refused")
        digests.record_outcome(conn, row["id"], sent_at=None, error=refused, due_at=due)
        return Sent(row["id"], False, "not visible")
    since = row["last_sent_at"] or now - FIRST_WINDOW
    zone = time_zone(conn, tenant_id)
    heading = (
        f"*{'Daily' if row['cadence'] == 'daily' else 'Weekday'} digest of <#{channel}>* "
        f"since {since.astimezone(zone):%a %-d %b %H:%M}"
    )
    if deps.llm is None:
        text = f"{heading}\n\n{NO_MODEL}"
    else:
        messages = reading.channel_messages(
            conn, client, tenant_id, channel=channel, since=since, bot_id=row["bot_id"]
        )
        text = write_summary(
            conn,
            client,
            deps.llm,
            deps.guardrails,
            tenant_id=tenant_id,
            channel=channel,
            messages=messages,
            heading=heading,
            conversation_key=f"digest:{row['id']}",
            on_call=usage_recorder(
                conn, tenant_id, None, deps.prices, deps.metrics, purpose="digest"
            ),
        ).text
    # A user id as the channel posts in the person's direct messages with the app.
    client.chat_postMessage(channel=row["deliver_to"], text=text, unfurl_links=False)
    digests.record_outcome(conn, row["id"], sent_at=now, error=None, due_at=due)
    log.info("digest.posted")
    return Sent(row["id"], True)
