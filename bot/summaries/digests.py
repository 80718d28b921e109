"""Scheduled summaries: a channel's digest posted daily (or on weekdays) at a time of day
in the workspace's time zone, to a channel or to the person who asked for it.

One periodic task (bot/queue/periodic.py, `summary_digests`) looks for digests whose
due time has come. Each is claimed before it is written: one conditional UPDATE moves its
``next_due_at`` to the next due time only if it still holds the due time that was read,
so with any number of workers, and sweeps racing, a due time is posted once. A worker
that dies after the claim loses that one digest rather than posting it twice.

Visibility is checked again at every due time, as for a summary on request: the bot and
the person who set the digest up must still be in the channel, and a private channel's
digest goes only to that channel or to that person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from psycopg import Connection

from bot.agent.runs import WorkerDeps, usage_recorder
from bot.intake.bot_tokens import with_bot_token
from bot.summaries import reading
from bot.summaries.job import NO_MODEL, time_zone, write_summary

log = structlog.get_logger(__name__)

Cadence = Literal["daily", "weekdays"]
CADENCES: tuple[Cadence, ...] = ("daily", "weekdays")
BATCH = 20  # digests written per sweep at most; the rest are next
FIRST_WINDOW = timedelta(hours=24)  # a digest's first read, with nothing sent before

DUE = """
    SELECT d.*, i.bot_token, i.bot_token_sealed, i.bot_id
    FROM summary_digests d JOIN slack_installations i ON i.tenant_id = d.tenant_id
    WHERE d.next_due_at <= now()
    ORDER BY d.next_due_at
    LIMIT %s
"""
CLAIM = """
    UPDATE summary_digests SET next_due_at = %(next)s
    WHERE id = %(id)s AND next_due_at = %(due)s
    RETURNING id
"""


def next_due(now: datetime, at: time, zone: ZoneInfo, cadence: str) -> datetime:
    """The first time after ``now`` that is ``at`` o'clock in ``zone`` on a day the
    cadence covers (every day, or Monday to Friday)."""
    local = now.astimezone(zone)
    day: date = local.date()
    for _ in range(8):
        due = datetime.combine(day, at, tzinfo=zone)
        if due > local and (cadence == "daily" or day.weekday() < 5):
            return due
        day += timedelta(days=1)
    raise ValueError(f"no due time for cadence {cadence!r}")


@dataclass(frozen=True)
class Sent:
    digest_id: int
    posted: bool
    reason: str | None = None


def send_due_digests(conn: Connection[dict[str, Any]], deps: WorkerDeps) -> list[Sent]:
    """Write and post every digest that is due and that no other worker claimed first."""
    sent: list[Sent] = []
    for row in conn.execute(DUE, (BATCH,)).fetchall():
        zone = time_zone(conn, row["tenant_id"])
        now = _db_now(conn)
        claimed = conn.execute(
            CLAIM,
            {
                "id": row["id"],
                "due": row["next_due_at"],
                "next": next_due(now, row["at_time"], zone, row["cadence"]),
            },
        ).fetchone()
        if claimed is None:
            continue  # another worker has this due time
        structlog.contextvars.bind_contextvars(tenant_id=row["tenant_id"], digest_id=row["id"])
        unsealed = with_bot_token(row)
        assert unsealed is not None  # given a row, a row
        try:
            sent.append(_send(conn, deps, unsealed, now))
        except Exception as exc:
            log.exception("digest.failed")
            _record(
                conn, row["id"], sent_at=None, error=f"could not be written ({type(exc).__name__})"
            )
            sent.append(Sent(row["id"], False, type(exc).__name__))
        finally:
            structlog.contextvars.unbind_contextvars("tenant_id", "digest_id")
    return sent


def _send(
    conn: Connection[dict[str, Any]], deps: WorkerDeps, row: dict[str, Any], now: datetime
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
        _record(conn, row["id"], sent_at=None, error=refused)
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
    _record(conn, row["id"], sent_at=now, error=None)
    log.info("digest.posted")
    return Sent(row["id"], True)


def _record(
    conn: Connection[dict[str, Any]], digest_id: int, *, sent_at: datetime | None, error: str | None
) -> None:
    conn.execute(
        """UPDATE summary_digests
           SET last_sent_at = coalesce(%s, last_sent_at), last_error = %s WHERE id = %s""",
        (sent_at, error, digest_id),
    )


def _db_now(conn: Connection[dict[str, Any]]) -> datetime:
    row = conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now.astimezone(UTC)
