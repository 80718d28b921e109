"""The console's one door to the audit log (core/store/audit.py): every `/agent` change
is written here, and `/agent audit` reads here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection

from core.store import audit

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
    await audit.append_async(conn, audit.Entry(tenant_id, actor, action, subject, details))


async def latest(conn: Conn, tenant_id: int, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` entries, newest first."""
    return await audit.latest_async(conn, tenant_id, limit)
