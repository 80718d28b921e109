"""The console's one door to `audit_log`: every `/agent` change is written here, and
`/agent audit` reads here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

Conn = AsyncConnection[dict[str, Any]]

VIA_CONSOLE: Mapping[str, Any] = {"via": "/agent"}


async def record(
    conn: Conn,
    tenant_id: int,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] = VIA_CONSOLE,
) -> None:
    """One entry, on the caller's connection so it commits with the change it records."""
    await conn.execute(
        """INSERT INTO audit_log (tenant_id, actor, action, subject, details)
           VALUES (%s, %s, %s, %s, %s)""",
        (tenant_id, actor, action, subject, Jsonb(dict(details))),
    )


async def latest(conn: Conn, tenant_id: int, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` entries, newest first."""
    cursor = await conn.execute(
        """SELECT created_at, actor, action, subject FROM audit_log
           WHERE tenant_id = %s ORDER BY id DESC LIMIT %s""",
        (tenant_id, limit),
    )
    return await cursor.fetchall()
