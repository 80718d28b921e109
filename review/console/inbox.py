"""`/agent inbox`: what the agent inbox answers with.

An inbox (an address or a whole domain routed to the tenant, see
connectors/email/inboxes.py) can be given an agent template and the knowledge collections
its answers come from. Customers write to inboxes, so with no collections set only the
collection for outside readers is searched, as in a Slack Connect channel. Admin-only
(review/console/dispatch.py checks before calling); every change is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.email.inboxes import list_inboxes, normalize_address, set_inbox_agent
from review.console import audit_log
from review.console.channels import COLLECTION_NAME, RESET
from review.console.context import Invocation, Reply
from review.conversation_settings import PUBLIC_COLLECTION

INBOX_USAGE = (
    "Usage: `/agent inbox` lists the agent's inboxes; `/agent inbox ADDRESS template=NAME "
    "collections=a,b` sets what one answers with (`=default` resets a setting: no template, "
    f"and only the `{PUBLIC_COLLECTION}` collection, the one for people outside the company)."
)


async def inbox(invocation: Invocation, args: list[str]) -> Reply:
    return Reply(await _inbox(invocation, args))


async def _inbox(invocation: Invocation, args: list[str]) -> str:
    pool, tenant_id, user = invocation.pool, invocation.tenant_id, invocation.user
    templates = invocation.templates
    if not args:
        async with pool.connection() as conn:
            rows = await list_inboxes(conn, tenant_id)
        if not rows:
            return "This workspace has no agent inbox yet. " + INBOX_USAGE
        return "The agent's inboxes:\n" + "\n".join(_describe(row) for row in rows)
    address, changes = normalize_address(_mailto(args[0])), args[1:]
    if not changes:
        return INBOX_USAGE
    async with pool.connection() as conn:
        current = next(
            (row for row in await list_inboxes(conn, tenant_id) if row["address"] == address),
            None,
        )
    if current is None:
        return f"`{address}` is not one of this workspace's inboxes. " + INBOX_USAGE
    template: str | None = current["agent_template"]
    collections: tuple[str, ...] | None = (
        tuple(current["collections"]) if current["collections"] is not None else None
    )
    for change in changes:
        key, _, value = change.partition("=")
        key, value = key.lower(), value.strip()
        if key == "template":
            if value in (RESET, "none"):
                template = None
            elif value in templates:
                template = value
            else:
                available = ", ".join(f"`{name}`" for name in sorted(templates)) or "none"
                return f"There is no template `{value}`. Available: {available}."
        elif key == "collections":
            if value == RESET:
                collections = None
            else:
                names = tuple(name.strip() for name in value.split(",") if name.strip())
                bad = [name for name in names if not COLLECTION_NAME.match(name)]
                if not names or bad:
                    return f"`{value}` is not a list of collection names. " + INBOX_USAGE
                collections = names
        else:
            return f"I don't know the setting `{key}`. " + INBOX_USAGE
    async with pool.connection() as conn, conn.transaction():
        await set_inbox_agent(conn, tenant_id, address, template=template, collections=collections)
        details = {**audit_log.VIA_CONSOLE, "template": template, "collections": collections}
        await audit_log.record(conn, tenant_id, user, "inbox.settings", address, details)
    return "New emails to " + _describe(
        {"address": address, "agent_template": template, "collections": collections}
    ).removeprefix("• ")


def _describe(row: Mapping[str, Any]) -> str:
    template = f"the `{row['agent_template']}` template" if row["agent_template"] else "no template"
    collections = row["collections"]
    knowledge = (
        ", ".join(f"`{name}`" for name in collections)
        if collections is not None
        else f"`{PUBLIC_COLLECTION}` (for people outside the company)"
    )
    return f"• {row['address']}: answered with {template}, from the knowledge in {knowledge}"


def _mailto(word: str) -> str:
    """Slack links typed addresses: `<mailto:a@b.example|a@b.example>` → `a@b.example`."""
    if word.startswith("<mailto:"):
        return word[len("<mailto:") :].split("|", 1)[0].rstrip(">")
    return word
