"""`/agent digest`: scheduled summaries of a channel (bot/summaries/digests.py).

- `/agent digest #channel daily 09:00 [to #other|me]` (or `weekdays`): a summary of the
  channel at that time in the workspace's time zone. To a channel (the summarised one
  unless `to #other`): admins only, as other channel settings. `to me`: anyone in the
  channel, for their own direct messages.
- `/agent digest list`: the workspace's digests, numbered.
- `/agent digest remove N`: admins, or whoever set up a digest to themselves.

The bot must be in the channel and so must the person; a private channel's digest goes
only to that channel or to the person. Every change is audited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.db import AsyncPool
from core.digest_schedule import CADENCES, next_due
from core.store import digests
from review.console import audit_log
from review.console.context import Invocation, Reply
from review.tenant_settings import time_zone_async, update_async

USAGE = (
    "Usage: `/agent digest #channel daily 09:00` posts a summary of the channel there "
    "every day at 09:00 (`weekdays` for Monday to Friday); add `to #other` to post it "
    "elsewhere or `to me` to get it in your direct messages. `/agent digest list` lists "
    "them; `/agent digest remove N` stops digest N."
)
CHANNEL = re.compile(r"^<#(?P<id>[CG][A-Z0-9]+)(\|[^>]*)?>$")
AT = re.compile(r"^(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm)?$", re.IGNORECASE)
LIST_MAX = 30


async def digest(invocation: Invocation, args: list[str]) -> Reply:
    """Anyone of the workspace may run it; what needs an admin asks
    `invocation.check_admin` (the dispatcher's check)."""
    inv = invocation
    if not args:
        return Reply(USAGE)
    if args[0].lower() == "list":
        return Reply(await _list(inv.pool, inv.tenant_id, inv.user))
    if args[0].lower() == "remove":
        return Reply(await _remove(inv, args[1:]))
    return Reply(await _add(inv, args))


async def timezone(invocation: Invocation, args: list[str]) -> Reply:
    return Reply(await _timezone(invocation.pool, invocation.tenant_id, invocation.user, args))


async def _add(invocation: Invocation, args: list[str]) -> str:
    pool, client = invocation.pool, invocation.client
    tenant_id, user = invocation.tenant_id, invocation.user
    channel = CHANNEL.match(args[0])
    if channel is None or len(args) < 3 or args[1].lower() not in CADENCES:
        return USAGE
    at = parse_time(args[2])
    if at is None:
        return f"I couldn't read `{args[2]}` as a time of day, like 09:00 or 5pm.\n{USAGE}"
    rest = [a.lower() for a in args[3:]]
    source = channel.group("id")
    personal, deliver_to = False, source
    if rest == ["to", "me"]:
        personal, deliver_to = True, user
    elif len(rest) == 2 and rest[0] == "to" and (other := CHANNEL.match(args[4])):
        deliver_to = other.group("id")
    elif rest:
        return USAGE
    if not personal:
        admin = await invocation.check_admin()
        if not admin.allowed:
            return (
                "Only workspace admins and this app's admins can post a digest to a "
                f"channel. You can get it yourself: `/agent digest <#{source}> "
                f"{args[1].lower()} {at:%H:%M} to me`."
            )
    refused = await _refusal(client, source, user, deliver_to, personal)
    if refused:
        return refused
    async with pool.connection() as conn:
        zone = await _zone(conn, tenant_id)
        due = next_due(datetime.now(UTC), at, zone, args[1].lower())
        new = digests.NewDigest(
            tenant_id, source, deliver_to, personal, args[1].lower(), at, user, due
        )
        digest_id = await digests.add_async(conn, new)
        await _audit(conn, tenant_id, user, "digest.add", {"digest": digest_id})
    where = "your direct messages" if personal else f"<#{deliver_to}>"
    return (
        f"Done: a summary of <#{source}> will be posted to {where} "
        f"{'every day' if args[1].lower() == 'daily' else 'Monday to Friday'} at "
        f"{at:%H:%M} ({zone.key}), first on {due:%A %-d %B}."
    )


async def _refusal(
    client: AsyncWebClient, source: str, user: str, deliver_to: str, personal: bool
) -> str | None:
    ref = f"<#{source}>"
    try:
        info = (await client.conversations_info(channel=source))["channel"]
    except SlackApiError:
        return f"I can't see {ref}, so I can't summarise it."
    if not info.get("is_member"):
        return f"I'm not a member of {ref}. Invite me there (`/invite @chatops`) first."
    if not await _is_member(client, source, user):
        return f"You're not a member of {ref}, so you can't set up its digest."
    private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
    if private and not personal and deliver_to != source:
        return (
            f"{ref} is private, so its digest can go only to {ref} itself or to you "
            "(`to me`), not where people outside it read."
        )
    if not personal and deliver_to != source:
        try:
            target = (await client.conversations_info(channel=deliver_to))["channel"]
        except SlackApiError:
            return f"I can't post in <#{deliver_to}>."
        if not target.get("is_member"):
            return f"I'm not a member of <#{deliver_to}>, so I can't post the digest there."
        if target.get("is_ext_shared") and not info.get("is_ext_shared"):
            return (
                f"<#{deliver_to}> is shared with people outside your organisation, so "
                f"{ref}'s digest can't go there."
            )
    return None


async def _is_member(client: AsyncWebClient, channel: str, user: str) -> bool:
    cursor: str | None = None
    for _ in range(50):
        response = await client.conversations_members(channel=channel, limit=100, cursor=cursor)
        if user in (response.get("members") or []):
            return True
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
    return False


async def _list(pool: AsyncPool, tenant_id: int, user: str) -> str:
    async with pool.connection() as conn:
        zone = await _zone(conn, tenant_id)
        rows = await digests.list_async(conn, tenant_id, LIST_MAX)
    if not rows:
        return "No digests are set up. " + USAGE
    lines = [f"*Digests* (times in {zone.key})"]
    for row in rows:
        where = (
            ("your direct messages" if row["deliver_to"] == user else f"<@{row['deliver_to']}>")
            if row["personal"]
            else f"<#{row['deliver_to']}>"
        )
        when = "every day" if row["cadence"] == "daily" else "Monday to Friday"
        line = (
            f"{row['id']}. <#{row['channel_id']}> to {where}, {when} at {row['at_time']:%H:%M}, "
            f"set up by <@{row['created_by']}>"
        )
        if row["last_error"]:
            line += f" — last time nothing was posted: {row['last_error']}"
        lines.append(line)
    return "\n".join(lines)


async def _remove(invocation: Invocation, args: list[str]) -> str:
    pool, tenant_id, user = invocation.pool, invocation.tenant_id, invocation.user
    if len(args) != 1 or not args[0].isdigit():
        return USAGE
    digest_id = int(args[0])
    async with pool.connection() as conn:
        row = await digests.get_async(conn, tenant_id, digest_id)
    if row is None:
        return f"There is no digest {digest_id}. `/agent digest list` shows them."
    if not (row["personal"] and row["created_by"] == user):
        admin = await invocation.check_admin()
        if not admin.allowed:
            return "Only workspace admins, this app's admins or its owner can remove that digest."
    async with pool.connection() as conn:
        await digests.remove_async(conn, tenant_id, digest_id)
        await _audit(conn, tenant_id, user, "digest.remove", {"digest": digest_id})
    return f"Digest {digest_id} of <#{row['channel_id']}> is removed."


async def _timezone(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> str:
    """`/agent timezone` shows the workspace's time zone; `/agent timezone ZONE` (admins,
    checked by the caller) sets it. Digests already set keep their next time until it
    has passed."""
    async with pool.connection() as conn:
        if not args:
            zone = await _zone(conn, tenant_id)
            return (
                f'This workspace\'s time zone is {zone.key}: digests and "since Monday" '
                "are read in it. `/agent timezone Europe/Paris` changes it."
            )
        name = args[0]
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return (
                f"I don't know the time zone `{name}`. Use a name like Europe/Paris, "
                "America/New_York or UTC."
            )
        await update_async(conn, tenant_id, {"time_zone": name})
        await _audit(conn, tenant_id, user, "settings.time_zone", {"time_zone": name})
    return f"Done: this workspace's time zone is now {name}."


def parse_time(text: str) -> time | None:
    match = AT.match(text.strip())
    if match is None:
        return None
    hour, minute = int(match.group("h")), int(match.group("m") or 0)
    ampm = (match.group("ampm") or "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


async def _zone(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> ZoneInfo:
    try:
        return ZoneInfo(await time_zone_async(conn, tenant_id) or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def _audit(
    conn: AsyncConnection[dict[str, Any]],
    tenant_id: int,
    user: str,
    action: str,
    details: dict[str, Any],
) -> None:
    """Digest changes name the table as their subject and say what changed in details."""
    await audit_log.record(conn, tenant_id, user, action, "summary_digests", details)
