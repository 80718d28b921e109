"""A tenant's review settings: approval channel, approvers, four-eyes, expiry, pause."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, Connection

SELECT = """
    SELECT t.id AS tenant_id, s.approval_channel_id, s.approver_group_id,
           coalesce(s.four_eyes, false) AS four_eyes,
           coalesce(s.approval_ttl, interval '24 hours') AS approval_ttl,
           coalesce(s.reminder_before, interval '2 hours') AS reminder_before,
           coalesce(s.paused, false) AS paused
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


def load(conn: Connection[dict[str, Any]], tenant_id: int) -> ReviewSettings:
    row = conn.execute(SELECT, (tenant_id,)).fetchone()
    assert row is not None, f"tenant {tenant_id} does not exist"
    return ReviewSettings(**row)


async def load_async(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> ReviewSettings:
    row = await (await conn.execute(SELECT, (tenant_id,))).fetchone()
    assert row is not None, f"tenant {tenant_id} does not exist"
    return ReviewSettings(**row)


def for_action(settings: ReviewSettings, action: Mapping[str, Any]) -> ReviewSettings:
    """The settings a decision on `action` is judged by: an action proposed under an agent
    template with four-eyes needs someone other than its requester, whatever the tenant's
    own setting says."""
    if action.get("four_eyes") and not settings.four_eyes:
        return replace(settings, four_eyes=True)
    return settings
