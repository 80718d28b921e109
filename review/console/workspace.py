"""`/agent status`, `admins`, `pause` / `resume` and `audit`: the workspace as a whole,
who steers it, and what was changed."""

from __future__ import annotations

from guardrails.status import budget_line
from review import people
from review.console import audit_log
from review.console.approvals import change_list, list_change
from review.console.changes import change_setting
from review.console.context import Invocation, Reply
from review.console.mentions import USER_REF
from review.tenant_settings import load_async

AUDIT_DEFAULT, AUDIT_MAX = 10, 50

# One look across the tables `status` sums up: requests, approvals and model spend.
STATUS_COUNTS = """SELECT
     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
        AND status IN ('received', 'queued', 'running')) AS backlog,
     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
        AND status = 'failed' AND received_at > now() - interval '1 day')
        AS failed_today,
     (SELECT count(*) FROM pending_actions WHERE tenant_id = %(t)s
        AND status = 'pending') AS pending,
     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
        AND created_at >= date_trunc('day', now())) AS spend_today,
     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
        AND created_at >= date_trunc('month', now())) AS spend_month"""
PROVIDER_HEALTH = """SELECT provider, count(*) FILTER (WHERE outcome = 'ok') AS ok,
          count(*) FILTER (WHERE outcome <> 'ok') AS failed
   FROM llm_usage WHERE tenant_id = %s AND created_at > now() - interval '15 minutes'
   GROUP BY provider ORDER BY provider"""


async def status(invocation: Invocation, args: list[str]) -> Reply:
    tenant_id, guardrails = invocation.tenant_id, invocation.guardrails
    async with invocation.pool.connection() as conn:
        settings = await load_async(conn, tenant_id)
        counts = await (await conn.execute(STATUS_COUNTS, {"t": tenant_id})).fetchone()
        providers = await (await conn.execute(PROVIDER_HEALTH, (tenant_id,))).fetchall()
        budget = await budget_line(conn, tenant_id, warn_ratio=guardrails.budget_warn_ratio)
    assert counts is not None
    health = (
        ", ".join(f"{p['provider']}: {p['ok']} ok / {p['failed']} failed" for p in providers)
        or "no calls in the last 15 minutes"
    )
    channel = f"<#{settings.approval_channel_id}>" if settings.approval_channel_id else "not set"
    model = invocation.model
    lines = [
        "*Assistant status*" + (" — :double_vertical_bar: *paused*" if settings.paused else ""),
        f"• Requests waiting or running: {counts['backlog']}; failed in the last day: {counts['failed_today']}",
        f"• Pending approvals: {counts['pending']} (approval channel: {channel})",
        *([f"• {model}"] if model else []),
        f"• Model providers, last 15 minutes: {health}",
        f"• Spend: ${counts['spend_today']:.4f} today, ${counts['spend_month']:.4f} this month",
        f"• Budget: {budget}",
        *(f"• Guardrails, {line}" for line in guardrails.check_lines),
    ]
    return Reply("\n".join(lines))


async def admins(invocation: Invocation, args: list[str]) -> Reply:
    """The app's own admins: they may run every changing command, and `/agent pause`
    works for them even when Slack cannot say who is a workspace admin."""
    if not args:
        async with invocation.pool.connection() as conn:
            named = await people.admins_async(conn, invocation.tenant_id)
        if not named:
            return Reply("This app has no admins of its own; workspace admins steer it.")
        return Reply("This app's admins: " + ", ".join(f"<@{admin}>" for admin in named))
    someone = list_change(args)
    if someone is None:
        return Reply("Usage: `/agent admins add @person` or `/agent admins remove @person`")
    await change_list(invocation, "admins", args[0], someone)
    if args[0] == "add":
        return Reply(f"<@{someone}> is now one of this app's admins.")
    return Reply(f"<@{someone}> is no longer one of this app's admins.")


async def pause(invocation: Invocation, args: list[str]) -> Reply:
    await change_setting(invocation, "paused", True)
    return Reply(
        ":double_vertical_bar: Paused: I will answer new requests with a notice and run no actions "
        "until someone runs `/agent resume`.",
        response_type="in_channel",
    )


async def resume(invocation: Invocation, args: list[str]) -> Reply:
    await change_setting(invocation, "paused", False)
    return Reply(":arrow_forward: Resumed: answering and acting again.", response_type="in_channel")


async def audit(invocation: Invocation, args: list[str]) -> Reply:
    limit = AUDIT_DEFAULT
    if args and args[0].isdigit():
        limit = max(1, min(AUDIT_MAX, int(args[0])))
    async with invocation.pool.connection() as conn:
        rows = await audit_log.latest(conn, invocation.tenant_id, limit)
    if not rows:
        return Reply("The audit log is empty.")
    lines = [f"*Last {len(rows)} audit entries*"] + [
        f"• {r['created_at']:%Y-%m-%d %H:%M} {_who(r['actor'])} {r['action']} {r['subject'] or ''}"
        for r in rows
    ]
    return Reply("\n".join(lines))


def _who(actor: str) -> str:
    return f"<@{actor}>" if USER_REF.match(actor) else actor
