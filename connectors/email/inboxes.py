"""Tenant inboxes (which addresses reach which tenant) and the outbound domain allowlist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, Connection

# A full address wins over its domain; both are stored lower-cased. A suspended tenant's
# inboxes take no mail.
ROUTE_SQL = """
SELECT i.tenant_id, i.kind, i.address, i.transport, i.gmail_user
  FROM tenant_inboxes i JOIN tenants t ON t.id = i.tenant_id AND t.status = 'active'
 WHERE (i.kind = 'address' AND i.address = %(address)s)
    OR (i.kind = 'domain' AND i.address = %(domain)s)
 ORDER BY i.kind = 'address' DESC
 LIMIT 1
"""
TENANT_ROUTE_SQL = """
SELECT tenant_id, kind, address, transport, gmail_user
  FROM tenant_inboxes
 WHERE tenant_id = %(tenant_id)s
   AND ((kind = 'address' AND address = %(address)s)
        OR (kind = 'domain' AND address = %(domain)s))
 ORDER BY kind = 'address' DESC
 LIMIT 1
"""


@dataclass(frozen=True)
class InboxRoute:
    tenant_id: int
    recipient: str  # the address as the sender wrote it, lower-cased
    transport: str  # 'smtp' or 'gmail': how replies to this inbox leave
    gmail_user: str | None


def normalize_address(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def domain_of(address: str) -> str:
    return normalize_address(address).rpartition("@")[2]


async def route_recipient(conn: AsyncConnection[dict[str, Any]], address: str) -> InboxRoute | None:
    """The tenant an RCPT TO address belongs to, or None (the listener answers 550)."""
    normalized = normalize_address(address)
    if "@" not in normalized:
        return None
    cursor = await conn.execute(ROUTE_SQL, {"address": normalized, "domain": domain_of(normalized)})
    row = await cursor.fetchone()
    if row is None:
        return None
    return InboxRoute(row["tenant_id"], normalized, row["transport"], row["gmail_user"])


def reply_route(conn: Connection[dict[str, Any]], tenant_id: int, inbox: str) -> InboxRoute | None:
    """How a reply from `inbox` leaves, for the worker; scoped to the tenant."""
    normalized = normalize_address(inbox)
    row = conn.execute(
        TENANT_ROUTE_SQL,
        {"tenant_id": tenant_id, "address": normalized, "domain": domain_of(normalized)},
    ).fetchone()
    if row is None:
        return None
    return InboxRoute(row["tenant_id"], normalized, row["transport"], row["gmail_user"])


@dataclass(frozen=True)
class InboxAgent:
    """What an inbox answers with (set by `/agent inbox`); None: the defaults."""

    template: str | None = None
    collections: tuple[str, ...] | None = None


def inbox_agent(conn: Connection[dict[str, Any]], tenant_id: int, inbox: str) -> InboxAgent:
    """The template and collections of the inbox a message came to (its address, else its
    domain); the defaults for an inbox nobody configured."""
    normalized = normalize_address(inbox)
    row = conn.execute(
        """SELECT agent_template, collections FROM tenant_inboxes
            WHERE tenant_id = %(tenant_id)s
              AND ((kind = 'address' AND address = %(address)s)
                   OR (kind = 'domain' AND address = %(domain)s))
            ORDER BY kind = 'address' DESC
            LIMIT 1""",
        {"tenant_id": tenant_id, "address": normalized, "domain": domain_of(normalized)},
    ).fetchone()
    if row is None:
        return InboxAgent()
    collections = row["collections"]
    return InboxAgent(
        template=row["agent_template"],
        collections=tuple(collections) if collections is not None else None,
    )


async def list_inboxes(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int
) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        """SELECT kind, address, agent_template, collections FROM tenant_inboxes
            WHERE tenant_id = %s ORDER BY kind, address""",
        (tenant_id,),
    )
    return await cursor.fetchall()


async def set_inbox_agent(
    conn: AsyncConnection[dict[str, Any]],
    tenant_id: int,
    inbox: str,
    *,
    template: str | None,
    collections: tuple[str, ...] | None,
) -> bool:
    """Give one of the tenant's inboxes a template and collections; False: no such inbox."""
    cursor = await conn.execute(
        """UPDATE tenant_inboxes SET agent_template = %s, collections = %s
            WHERE tenant_id = %s AND address = %s
            RETURNING id""",
        (
            template,
            list(collections) if collections is not None else None,
            tenant_id,
            normalize_address(inbox),
        ),
    )
    return await cursor.fetchone() is not None


def add_inbox(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    address_or_domain: str,
    *,
    transport: str = "smtp",
    gmail_user: str | None = None,
) -> None:
    """Route mail for an address ('a@b.example') or a whole domain ('b.example') to a tenant."""
    value = normalize_address(address_or_domain)
    kind = "address" if "@" in value else "domain"
    conn.execute(
        """INSERT INTO tenant_inboxes (tenant_id, kind, address, transport, gmail_user)
           VALUES (%s, %s, %s, %s, %s)""",
        (tenant_id, kind, value, transport, gmail_user),
    )


def disallowed_recipients(
    conn: Connection[dict[str, Any]], tenant_id: int, addresses: list[str]
) -> list[str]:
    """The addresses whose domain the tenant does NOT allow new mail to (empty: all fine)."""
    rows = conn.execute(
        "SELECT domain FROM tenant_email_allowlist WHERE tenant_id = %s", (tenant_id,)
    ).fetchall()
    allowed = {row["domain"] for row in rows}
    return [a for a in addresses if domain_of(a) not in allowed]
