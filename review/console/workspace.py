"""`/agent status`, `admins`, `pause` / `resume` and `audit`: the workspace as a whole,
who steers it, and what was changed."""

from __future__ import annotations

from core.store import llm_usage, requests
from guardrails.status import budget_line
from review import actions, people
from review.console import audit_log
from review.console.approvals import change_list, list_change
from review.console.changes import change_setting
from review.console.context import Invocation, Reply
from review.console.mentions import USER_REF
from review.tenant_settings import load_async

AUDIT_DEFAULT, AUDIT_MAX = 10, 50


async def status(invocation: Invocation, args: list[str]) -> Reply:
    tenant_id, guardrails = invocation.tenant_id, invocation.guardrails
    async with invocation.pool.connection() as conn:
        settings = await load_async(conn, tenant_id)
        backlog = await requests.backlog_async(conn, tenant_id)
        pending = await actions.count_waiting_async(conn, tenant_id)
        spend = await llm_usage.spend_async(conn, tenant_id)
        providers = await llm_usage.provider_health_async(conn, tenant_id)
        budget = await budget_line(conn, tenant_id, warn_ratio=guardrails.budget_warn_ratio)
    health = (
        ", ".join(f"{p.provider}: {p.ok} ok / {p.failed} failed" for p in providers)
        or "no calls in the last 15 minutes"
    )
    channel = f"<#{settings.approval_channel_id}>" if settings.approval_channel_id else "not set"
    model = invocation.model
    lines = [
        "*Assistant status*" + (" — :double_vertical_bar: *paused*" if settings.paused else ""),
        f"• Requests waiting or running: {backlog.open}; failed in the last day: {backlog.failed_last_day}",
        f"• Pending approvals: {pending} (approval channel: {channel})",
        *([f"• {model}"] if model else []),
        f"• Model providers, last 15 minutes: {health}",
        f"• Spend: ${spend.today:.4f} today, ${spend.month:.4f} this month",
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
