"""The people a tenant names itself: its approvers (`tenant_approvers`) and the app's own
admins (`tenant_admins`). review/authority.py reads them when judging who may do what."""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection, sql

Conn = AsyncConnection[dict[str, Any]]
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


async def admins_async(conn: Conn, tenant_id: int) -> list[str]:
    """The app's own admins, in the order they were added."""
    cursor = await conn.execute(
        "SELECT slack_user_id FROM tenant_admins WHERE tenant_id = %s ORDER BY added_at",
        (tenant_id,),
    )
    return [row["slack_user_id"] for row in await cursor.fetchall()]
