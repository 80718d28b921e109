"""The audit log: who did what, when. The one writer of its entries, and their readers.

The table is append-only (the database refuses updates and deletes). Entries are stored
as given: a caller whose details hold what a person typed masks them first, as its
readers (approvers, admins) may see them (review/actions.py's `audit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.types.json import Jsonb

APPEND = """
    INSERT INTO audit_log (tenant_id, actor, action, subject, details)
    VALUES (%s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class Entry:
    """One line of the log: who (a Slack user, 'agent', 'email', 'system') did what
    (`action`, as 'rule.created') to what (`subject`, as 'action:42'), and its details."""

    tenant_id: int | None  # None: before a tenant is known
    actor: str
    action: str
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def params(self) -> tuple[Any, ...]:
        return (self.tenant_id, self.actor, self.action, self.subject, Jsonb(dict(self.details)))


def append(conn: Connection[Any], entry: Entry) -> None:
    """Add an entry, in the caller's transaction: it is kept only if what it records is."""
    conn.execute(APPEND, entry.params())


async def append_async(conn: AsyncConnection[Any], entry: Entry) -> None:
    """`append`, for the listeners' and commands' event loop."""
    await conn.execute(APPEND, entry.params())


def entries_about(
    conn: Connection[dict[str, Any]], tenant_id: int, subject: str, action: str
) -> list[dict[str, Any]]:
    """The tenant's entries of one kind about one subject, oldest first: actor and
    details."""
    return conn.execute(
        """SELECT actor, details FROM audit_log
           WHERE tenant_id = %s AND subject = %s AND action = %s
           ORDER BY id""",
        (tenant_id, subject, action),
    ).fetchall()


async def latest_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, limit: int
) -> list[dict[str, Any]]:
    """The tenant's newest `limit` entries, newest first: when, who, what and about what."""
    cursor = await conn.execute(
        """SELECT created_at, actor, action, subject FROM audit_log
           WHERE tenant_id = %s ORDER BY id DESC LIMIT %s""",
        (tenant_id, limit),
    )
    return await cursor.fetchall()
