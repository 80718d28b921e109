"""`/agent template` and `/agent channel`: which agent template a tenant or channel uses,
and how the agent behaves in a channel. Admin-only (review/console/dispatch.py checks
before calling); every change is audited. New threads pick the settings up; threads already
under way keep the ones they pinned (review/conversation_settings.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.agent_template import AgentTemplate
from core.db import AsyncPool
from review.console import audit_log
from review.console.context import Invocation, Reply
from review.console.mentions import channel_id, usergroup_id
from review.conversation_settings import (
    effective,
    load_channel_async,
    remember_shared_async,
    store_channel_async,
    tenant_template_async,
)
from review.tenant_settings import update_async

COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
RESET = "default"  # any key=default returns the setting to its default
REPLY_MODES = {"mention": "mention", "all": "every_question", "every_question": "every_question"}
VISIBILITIES = ("public", "private")

TEMPLATE_USAGE = (
    "Usage: `/agent template NAME` picks this workspace's agent template, "
    "`/agent template NAME #channel` one channel's, `/agent template none` goes back to "
    "no template (every tool, the default prompt)."
)
CHANNEL_USAGE = (
    "Usage: `/agent channel [#channel]` shows a channel's settings; "
    "`/agent channel [#channel] template=NAME reply=mention|all visibility=public|private "
    "collections=a,b ask=@group` changes them (any of them; `=default` resets one, "
    "`ask=anyone` lets everyone ask)."
)


async def template(invocation: Invocation, args: list[str]) -> Reply:
    return Reply(await _template(invocation, args))


async def channel(invocation: Invocation, args: list[str]) -> Reply:
    inv = invocation
    return Reply(
        await _channel_settings(
            inv.pool, inv.client, inv.tenant_id, inv.user, inv.channel, args, inv.templates
        )
    )


async def _template(invocation: Invocation, args: list[str]) -> str:
    pool, tenant_id, user = invocation.pool, invocation.tenant_id, invocation.user
    templates = invocation.templates
    available = ", ".join(f"`{name}`" for name in sorted(templates)) or "none installed"
    if not args:
        async with pool.connection() as conn:
            current = await tenant_template_async(conn, tenant_id)
        return (
            f"This workspace's agent template: `{current or 'none'}`. Available: {available}.\n"
            + TEMPLATE_USAGE
        )
    name = args[0].lower()
    channel = channel_id(args[1]) if len(args) == 2 else None
    if len(args) > 2 or (len(args) == 2 and channel is None):
        return TEMPLATE_USAGE
    if name not in templates and name != "none":
        return f"There is no template `{name}`. Available: {available}."
    value = None if name == "none" else name
    if channel is not None:
        await _store_channel(pool, tenant_id, user, channel, {"agent_template": value})
        return f"New threads in <#{channel}> will use the `{name}` template."
    async with pool.connection() as conn, conn.transaction():
        await update_async(conn, tenant_id, {"agent_template": value})
        await audit_log.record(conn, tenant_id, user, "settings.agent_template", name)
    if value is None:
        return "No agent template: every tool, the default prompt and all knowledge."
    template = templates[name]
    return (
        f"New threads will use the `{name}` template (v{template.version}): "
        f"{template.description} Channels with their own template keep it."
    )


async def _channel_settings(
    pool: AsyncPool,
    client: AsyncWebClient,
    tenant_id: int,
    user: str,
    here: str,
    args: list[str],
    templates: Mapping[str, AgentTemplate],
) -> str:
    channel = here
    if args and (named := channel_id(args[0])) is not None:
        channel, args = named, args[1:]
    if not args:
        return await _show(pool, client, tenant_id, channel, templates)
    changes: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            return CHANNEL_USAGE
        problem = await _parse(client, key.lower(), value, templates, changes)
        if problem:
            return problem
    await _store_channel(pool, tenant_id, user, channel, changes)
    return "Saved; new threads use it.\n" + await _show(pool, client, tenant_id, channel, templates)


async def _parse(
    client: AsyncWebClient,
    key: str,
    value: str,
    templates: Mapping[str, AgentTemplate],
    changes: dict[str, Any],
) -> str | None:
    """Adds the setting to `changes`; returns what is wrong with it, if anything."""
    reset = value.lower() == RESET
    if key == "template":
        if not reset and value.lower() not in templates:
            return f"There is no template `{value}`. Available: {', '.join(sorted(templates))}."
        changes["agent_template"] = None if reset else value.lower()
    elif key == "reply":
        if not reset and value.lower() not in REPLY_MODES:
            return "`reply` is `mention` (answer only when mentioned) or `all` (every question)."
        changes["reply_mode"] = None if reset else REPLY_MODES[value.lower()]
    elif key == "visibility":
        if not reset and value.lower() not in VISIBILITIES:
            return "`visibility` is `public` or `private` (only the asker sees the answer)."
        changes["visibility"] = None if reset else value.lower()
    elif key == "collections":
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not reset and not all(COLLECTION_NAME.match(n) for n in names):
            return "`collections` is a comma-separated list of collection names."
        changes["collections"] = None if reset else names
    elif key == "ask":
        if reset or value.lower() == "anyone":
            changes["allowed_usergroups"] = []
            return None
        groups = []
        for ref in value.split(","):
            group = usergroup_id(ref.strip())
            if group is None:
                return "`ask` takes user groups (`ask=@support-team`) or `anyone`."
            try:
                await client.usergroups_users_list(usergroup=group)
            except SlackApiError:
                return f"I can't read the user group <!subteam^{group}>; is it still there?"
            groups.append(group)
        changes["allowed_usergroups"] = groups
    else:
        return f"There is no channel setting `{key}`.\n{CHANNEL_USAGE}"
    return None


async def _show(
    pool: AsyncPool,
    client: AsyncWebClient,
    tenant_id: int,
    channel: str,
    templates: Mapping[str, AgentTemplate],
) -> str:
    async with pool.connection() as conn:
        known = await load_channel_async(conn, tenant_id, channel)
        tenant_template = await tenant_template_async(conn, tenant_id)
        shared = known.is_ext_shared
        if shared is None or not known.shared_fresh:
            try:
                info = (await client.conversations_info(channel=channel)).get("channel") or {}
                shared = bool(info.get("is_ext_shared"))
                await remember_shared_async(conn, tenant_id, channel, shared)
            except SlackApiError:
                shared = True  # as the worker assumes when Slack cannot tell
    settings = effective(known, tenant_template, shared, templates)
    collections = (
        ", ".join(f"`{c}`" for c in settings.collections) or "none"
        if settings.collections is not None
        else "all"
    )
    askers = ", ".join(f"<!subteam^{g}>" for g in known.allowed_usergroups) or "anyone"
    template = (
        f"`{settings.template}` v{settings.template_version}" if settings.template else "none"
    )
    return "\n".join(
        [
            f"*Settings for <#{channel}>*" + (" (Slack Connect)" if shared else ""),
            f"• Template: {template}" + ("" if known.template else " _(workspace default)_"),
            "• Answers: "
            + ("every question" if settings.reply_mode == "every_question" else "when mentioned"),
            "• Visibility: "
            + ("private, with a Share button" if settings.visibility == "private" else "public"),
            f"• Knowledge: {collections}",
            f"• Who may ask: {askers}",
        ]
    )


async def _store_channel(
    pool: AsyncPool, tenant_id: int, user: str, channel: str, changes: dict[str, Any]
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await store_channel_async(conn, tenant_id, channel, user, changes)
        for column, value in changes.items():
            await audit_log.record(conn, tenant_id, user, f"channel.{column}", f"{channel}={value}")
