"""The audit log: who did what, when. The one writer of its entries, and their readers.

The table is append-only (the database refuses updates and deletes). Entries are stored
as given: a caller whose details hold what a person typed masks them first, as its
readers (approvers, admins) may see them (review/actions.py's `audit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.types.json import Jsonb

APPEND = """
    INSERT INTO audit_log (tenant_id, actor, action, subject, details)
    VALUES (%s, %s, %s, %s, %s)
"""


def _params(
    tenant_id: int | None,
    actor: str,
    action: str,
    subject: str | None,
    details: Mapping[str, Any] | None,
) -> tuple[Any, ...]:
    # No details are stored as the column's default, an empty object.
    return (tenant_id, actor, action, subject, Jsonb(dict(details or {})))


def append(
    conn: Connection[Any],
    *,
    tenant_id: int | None,
    actor: str,
    action: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry, in the caller's transaction: it is kept only if what it records is."""
    conn.execute(APPEND, _params(tenant_id, actor, action, subject, details))


async def append_async(
    conn: AsyncConnection[Any],
    *,
    tenant_id: int | None,
    actor: str,
    action: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """`append`, for the listeners' and commands' event loop."""
    await conn.execute(APPEND, _params(tenant_id, actor, action, subject, details))


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
