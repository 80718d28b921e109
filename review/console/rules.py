"""`/agent escalate` and `/agent rules`: who undecided actions go to next, and the
"always allow" rules approvers made from cards (review/rules.py).

`/agent escalate` and changing `/agent rules` are for admins (review/console/dispatch.py
checks before calling); listing the rules is for anyone of the workspace. Every change is
audited.
"""

from __future__ import annotations

import re
from datetime import timedelta

from core.db import AsyncPool
from review.console import audit_log
from review.console.context import Invocation, Reply
from review.escalation import duration, mentions
from review.handoff import parse_target
from review.messages import person
from review.rules import MAX_DAYS, describe, in_force_async, revoke_async
from review.tenant_settings import load_async, update_async

ESCALATE_USAGE = (
    "Usage: `/agent escalate @person-or-@group [@more] after 2h` sends actions nobody "
    "decided within that time to them as well; `/agent escalate off` stops it; "
    "`/agent escalate` shows the setting."
)
RULES_USAGE = (
    "`/agent rules` lists the always-allow rules; `/agent rules revoke N` stops rule N; "
    "`/agent rules days N` sets how long new rules last (admins)."
)
SPAN = re.compile(
    r"^(?P<n>\d+)\s*(?P<unit>m|mins?|minutes?|h|hrs?|hours?|d|days?)$", flags=re.IGNORECASE
)
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
LIST_MAX = 30  # rules listed


async def escalate(invocation: Invocation, args: list[str]) -> Reply:
    inv = invocation
    return Reply(await _escalate(inv.pool, inv.tenant_id, inv.user, args))


async def rules(invocation: Invocation, args: list[str]) -> Reply:
    """Without arguments the listing, for anyone; `revoke` and `days` are for admins."""
    if not args:
        return Reply(await _list_rules(invocation.pool, invocation.tenant_id))
    return Reply(await _change_rules(invocation.pool, invocation.tenant_id, invocation.user, args))


async def _escalate(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> str:
    async with pool.connection() as conn:
        settings = await load_async(conn, tenant_id)
    if not args:
        if not settings.escalate_to or settings.escalate_after is None:
            return "No escalation is set: undecided actions simply expire.\n" + ESCALATE_USAGE
        return (
            f"Actions nobody decides within {duration(settings.escalate_after)} are escalated "
            f"to {mentions(settings.escalate_to)}, who can then decide them too."
        )
    if args == ["off"]:
        await _set_escalation(pool, tenant_id, user, None, None)
        return "Escalation is off: actions nobody decides simply expire."
    lowered = [a.lower() for a in args]
    if "after" not in lowered:
        return ESCALATE_USAGE
    cut = lowered.index("after")
    targets = [parse_target(a) for a in args[:cut]]
    span = _span(" ".join(args[cut + 1 :]))
    if not targets or None in targets or span is None:
        return ESCALATE_USAGE
    named = [t for t in dict.fromkeys(targets) if t is not None]
    if span >= settings.approval_ttl:
        return (
            f"Actions expire after {duration(settings.approval_ttl)}, so escalating after "
            f"{duration(span)} would never happen. Pick a shorter time."
        )
    await _set_escalation(pool, tenant_id, user, named, span)
    return (
        f"Actions nobody decides within {duration(span)} will be escalated to "
        f"{mentions(named)}, who can then decide them too. They still expire after "
        f"{duration(settings.approval_ttl)}."
    )


async def _list_rules(pool: AsyncPool, tenant_id: int) -> str:
    async with pool.connection() as conn:
        rows = await in_force_async(conn, tenant_id, LIST_MAX)
        settings = await load_async(conn, tenant_id)
    lasts = f"New rules last {settings.rule_days} days."
    if not rows:
        return (
            "No always-allow rules are in force. An approver makes one with "
            f"*Approve & always allow* on an approval card. {lasts}\n{RULES_USAGE}"
        )
    lines = ["*Always-allow rules*"] + [
        f"• *{r['number']}*: {describe(r)} (set by {person(r['created_by'])})" for r in rows
    ]
    return "\n".join([*lines, lasts, RULES_USAGE])


async def _change_rules(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> str:
    """`rules revoke N` and `rules days N` (the listing is `_list_rules`)."""
    if len(args) != 2 or args[0] not in ("revoke", "days") or not args[1].isdigit():
        return RULES_USAGE
    number = int(args[1])
    if args[0] == "days":
        if not 1 <= number <= MAX_DAYS:
            return f"A rule can last from 1 to {MAX_DAYS} days."
        async with pool.connection() as conn, conn.transaction():
            await update_async(conn, tenant_id, {"rule_days": number})
            await audit_log.record(conn, tenant_id, user, "settings.rule_days", str(number))
        return f"New always-allow rules will last {number} days. Rules already made keep their end date."
    async with pool.connection() as conn, conn.transaction():
        rule = await revoke_async(conn, tenant_id, number, user)
        if rule is None:
            return f"There is no rule {number} in force. `/agent rules` lists them."
        details = {"tool": rule["tool"], **audit_log.VIA_CONSOLE}
        await audit_log.record(conn, tenant_id, user, "rule.revoked", f"rule:{number}", details)
    return f"Rule {number} ({describe(rule)}) is revoked: actions like it need an approval again."


def _span(text: str) -> timedelta | None:
    match = SPAN.match(text.strip())
    if match is None or int(match.group("n")) == 0:
        return None
    return int(match.group("n")) * UNITS[match.group("unit")[0].lower()]


async def _set_escalation(
    pool: AsyncPool,
    tenant_id: int,
    user: str,
    targets: list[str] | None,
    after: timedelta | None,
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await update_async(conn, tenant_id, {"escalate_to": targets, "escalate_after": after})
        await audit_log.record(
            conn,
            tenant_id,
            user,
            "settings.escalation",
            "off" if targets is None else f"{' '.join(targets)} after {after}",
        )
