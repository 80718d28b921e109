"""A tenant's review settings: approval channel, approvers, four-eyes, expiry, pause,
escalation, and how long an "always allow" rule lasts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, Connection, sql

SELECT = """
    SELECT t.id AS tenant_id, s.approval_channel_id, s.approver_group_id,
           coalesce(s.four_eyes, false) AS four_eyes,
           coalesce(s.approval_ttl, interval '24 hours') AS approval_ttl,
           coalesce(s.reminder_before, interval '2 hours') AS reminder_before,
           coalesce(s.paused, false) AS paused,
           coalesce(s.escalate_to, '{}') AS escalate_to, s.escalate_after,
           coalesce(s.rule_days, 30) AS rule_days
    FROM tenants t LEFT JOIN tenant_settings s ON s.tenant_id = t.id
    WHERE t.id = %s
"""

UPSERT = """
    INSERT INTO tenant_settings (tenant_id) VALUES (%s)
    ON CONFLICT (tenant_id) DO NOTHING
"""


@dataclass(frozen=True)
class ReviewSettings:
    tenant_id: int
    approval_channel_id: str | None
    approver_group_id: str | None
    four_eyes: bool
    approval_ttl: timedelta
    reminder_before: timedelta
    paused: bool
    # Who an action undecided after `escalate_after` is escalated to (review/sweep.py):
    # mentions as Slack renders them, <@U…> or <!subteam^S…>; none: no escalation.
    escalate_to: tuple[str, ...] = ()
    escalate_after: timedelta | None = None
    rule_days: int = 30  # how long an "Approve & always allow" rule lasts by default
    # Set per action only (`for_action`): the people an escalated action was shown to,
    # who may decide it besides the approvers.
    escalated_to: tuple[str, ...] = ()


def _settings(row: Mapping[str, Any]) -> ReviewSettings:
    return ReviewSettings(**{**row, "escalate_to": tuple(row["escalate_to"] or ())})


def load(conn: Connection[dict[str, Any]], tenant_id: int) -> ReviewSettings:
    row = conn.execute(SELECT, (tenant_id,)).fetchone()
    assert row is not None, f"tenant {tenant_id} does not exist"
    return _settings(row)


async def load_async(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> ReviewSettings:
    row = await (await conn.execute(SELECT, (tenant_id,))).fetchone()
    assert row is not None, f"tenant {tenant_id} does not exist"
    return _settings(row)


def for_action(settings: ReviewSettings, action: Mapping[str, Any]) -> ReviewSettings:
    """The settings a decision on `action` is judged by: an action proposed under an agent
    template with four-eyes needs someone other than its requester, whatever the tenant's
    own setting says; an escalated action may also be decided by those it went to."""
    if action.get("four_eyes") and not settings.four_eyes:
        settings = replace(settings, four_eyes=True)
    if action.get("escalated_at") and action.get("escalated_to"):
        # Escalated: the people it was shown to may decide it too.
        settings = replace(settings, escalated_to=tuple(action["escalated_to"]))
    return settings


async def update_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, values: Mapping[str, object]
) -> None:
    """Set these columns of the tenant's settings, creating its row if it has none. The
    column names come from code, never from what someone typed."""
    columns = [sql.Identifier(column) for column in values]
    query = sql.SQL(
        """INSERT INTO tenant_settings (tenant_id, {columns}) VALUES (%s, {values})
           ON CONFLICT (tenant_id) DO UPDATE SET {updates}, updated_at = now()"""
    ).format(
        columns=sql.SQL(", ").join(columns),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=c) for c in columns),
    )
    await conn.execute(query, (tenant_id, *values.values()))


async def time_zone_async(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> str | None:
    """The workspace's time zone as stored (a name Python may not know); None if unset."""
    row = await (
        await conn.execute(
            "SELECT time_zone FROM tenant_settings WHERE tenant_id = %s", (tenant_id,)
        )
    ).fetchone()
    return (row or {}).get("time_zone")
