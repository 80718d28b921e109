"""The people a tenant names itself: its approvers (`tenant_approvers`) and the app's own
admins (`tenant_admins`). The console changes them; review/authority.py and
review/handoff.py read them through here."""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection, Connection, sql

Conn = AsyncConnection[dict[str, Any]]
SyncConn = Connection[dict[str, Any]]
PeopleList = Literal["approvers", "admins"]

# The table comes from here, never from what was typed.
TABLES: dict[PeopleList, str] = {"approvers": "tenant_approvers", "admins": "tenant_admins"}


async def add_async(conn: Conn, tenant_id: int, name: PeopleList, person: str, by: str) -> None:
    """Put `person` on the list; already on it is fine."""
    await conn.execute(
        sql.SQL(
            """INSERT INTO {} (tenant_id, slack_user_id, added_by)
               VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"""
        ).format(sql.Identifier(TABLES[name])),
        (tenant_id, person, by),
    )


async def remove_async(conn: Conn, tenant_id: int, name: PeopleList, person: str) -> None:
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND slack_user_id = %s").format(
            sql.Identifier(TABLES[name])
        ),
        (tenant_id, person),
    )


ADMINS = "SELECT slack_user_id FROM tenant_admins WHERE tenant_id = %s ORDER BY added_at"
FIRST_ADMINS = ADMINS + " LIMIT %s"
IS_ADMIN = "SELECT 1 FROM tenant_admins WHERE tenant_id = %s AND slack_user_id = %s"
APPROVERS = "SELECT slack_user_id FROM tenant_approvers WHERE tenant_id = %s"


async def admins_async(conn: Conn, tenant_id: int, limit: int | None = None) -> list[str]:
    """The app's own admins, in the order they were added; the first ``limit`` only,
    when given."""
    if limit is None:
        cursor = await conn.execute(ADMINS, (tenant_id,))
    else:
        cursor = await conn.execute(FIRST_ADMINS, (tenant_id, limit))
    return [row["slack_user_id"] for row in await cursor.fetchall()]


async def is_admin_async(conn: Conn, tenant_id: int, person: str) -> bool:
    """Whether `person` is one of the app's own admins."""
    cursor = await conn.execute(IS_ADMIN, (tenant_id, person))
    return await cursor.fetchone() is not None


def is_admin(conn: SyncConn, tenant_id: int, person: str) -> bool:
    """`is_admin_async`, for the worker."""
    return conn.execute(IS_ADMIN, (tenant_id, person)).fetchone() is not None


def approvers(conn: SyncConn, tenant_id: int) -> set[str]:
    """The workspace's approvers named one by one (not those of its approver group)."""
    return {row["slack_user_id"] for row in conn.execute(APPROVERS, (tenant_id,))}
