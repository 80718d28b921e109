"""Summary digests: a channel's scheduled summary, set up from the console
(review/console/digests.py) and claimed, written and posted by the worker
(bot/summaries/digests.py).

A due time is claimed once: `claim` moves ``next_due_at`` on only if it still holds the
due time that was read, whatever number of workers race for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from psycopg import AsyncConnection, Connection


@dataclass(frozen=True)
class NewDigest:
    """A digest as the console sets it up."""

    tenant_id: int
    channel_id: str  # the channel summarised
    deliver_to: str  # a channel id, or a user id when personal
    personal: bool
    cadence: str  # 'daily' or 'weekdays'
    at_time: time
    created_by: str
    next_due_at: datetime


INSERT = """
    INSERT INTO summary_digests (tenant_id, channel_id, deliver_to, personal,
      cadence, at_time, created_by, next_due_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
LIST = "SELECT * FROM summary_digests WHERE tenant_id = %s ORDER BY id LIMIT %s"
ONE_IN_TENANT = "SELECT * FROM summary_digests WHERE id = %s AND tenant_id = %s"
DELETE = "DELETE FROM summary_digests WHERE id = %s AND tenant_id = %s"

# With the workspace's bot token: what the worker needs to post.
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
TO_SEND = """
    SELECT d.*, i.bot_token, i.bot_token_sealed, i.bot_id
    FROM summary_digests d JOIN slack_installations i ON i.tenant_id = d.tenant_id
    WHERE d.id = %s
"""
OUTCOME = """
    UPDATE summary_digests
    SET last_sent_at = coalesce(%s, last_sent_at), last_error = %s, sent_for = %s
    WHERE id = %s
"""


async def add_async(conn: AsyncConnection[dict[str, Any]], digest: NewDigest) -> int:
    """Store a new digest; its id."""
    row = await (
        await conn.execute(
            INSERT,
            (
                digest.tenant_id,
                digest.channel_id,
                digest.deliver_to,
                digest.personal,
                digest.cadence,
                digest.at_time,
                digest.created_by,
                digest.next_due_at,
            ),
        )
    ).fetchone()
    assert row is not None  # an INSERT without a conflict clause returns its row
    return int(row["id"])


async def list_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, limit: int
) -> list[dict[str, Any]]:
    """The workspace's digests, oldest first, at most ``limit``."""
    return await (await conn.execute(LIST, (tenant_id, limit))).fetchall()


async def get_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, digest_id: int
) -> dict[str, Any] | None:
    """Digest ``digest_id`` of the workspace, or None."""
    return await (await conn.execute(ONE_IN_TENANT, (digest_id, tenant_id))).fetchone()


async def remove_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, digest_id: int
) -> None:
    await conn.execute(DELETE, (digest_id, tenant_id))


def due(conn: Connection[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Digests whose due time has come, the earliest first, with their workspace's bot
    token columns."""
    return conn.execute(DUE, (limit,)).fetchall()


def claim(
    conn: Connection[dict[str, Any]], digest_id: int, due_at: datetime, next_due_at: datetime
) -> bool:
    """Move the digest on to ``next_due_at`` if it is still due at ``due_at``; False
    when another worker claimed that due time first."""
    row = conn.execute(CLAIM, {"id": digest_id, "due": due_at, "next": next_due_at}).fetchone()
    return row is not None


def to_send(conn: Connection[dict[str, Any]], digest_id: int) -> dict[str, Any] | None:
    """Digest ``digest_id`` with its workspace's bot token columns, or None if removed."""
    return conn.execute(TO_SEND, (digest_id,)).fetchone()


def record_outcome(
    conn: Connection[dict[str, Any]],
    digest_id: int,
    *,
    sent_at: datetime | None,
    error: str | None,
    due_at: datetime,
) -> None:
    """What became of the due time ``due_at``: posted at ``sent_at``, or not, and why."""
    conn.execute(OUTCOME, (sent_at, error, due_at, digest_id))


def database_now(conn: Connection[dict[str, Any]]) -> datetime:
    """The database's clock, which due times are compared with, in UTC."""
    row = conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now.astimezone(UTC)
