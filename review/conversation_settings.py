"""How the agent behaves in one Slack thread: its template, reply mode, visibility and
knowledge, from what an admin set for the channel (`/agent channel`) and the tenant
(`/agent template`), pinned on the thread's first run.

Pinning is what keeps a conversation coherent: every later turn of a thread uses the
template and settings its first turn used, even after the channel's default changes.
Who may ask is the one setting never pinned: taking someone's access away must hold in
old threads too.

Defaults, when nothing is set: no template (every tool, the default prompt, all
knowledge), answers only when mentioned, public answers. A Slack Connect channel (shared
with another organisation) defaults to private answers and the `public` collection only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

import structlog
from psycopg import AsyncConnection, Connection, sql
from psycopg.types.json import Jsonb
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.slack.web_client import is_transient
from core.agent_template import AgentTemplate

log = structlog.get_logger(__name__)

ReplyMode = Literal["mention", "every_question"]
Visibility = Literal["public", "private"]

# The knowledge people outside the company may see: in a Slack Connect channel, unless an
# admin chose collections for it, only this collection is searched. Ingest such documents
# with `chatops ingest ... --collection public`.
PUBLIC_COLLECTION = "public"
# How long a channel's Slack Connect status is trusted before conversations.info is
# asked again; channels are rarely shared or unshared.
SHARED_STATUS_MAX_AGE = timedelta(days=1)

SELECT_CHANNEL = """
    SELECT agent_template, reply_mode, visibility, collections, allowed_usergroups,
           is_ext_shared, ext_shared_checked_at > now() - %(max_age)s AS shared_fresh
    FROM channel_settings WHERE tenant_id = %(tenant)s AND slack_channel_id = %(channel)s
"""
SELECT_TENANT_TEMPLATE = "SELECT agent_template FROM tenant_settings WHERE tenant_id = %s"
STORE_SHARED = """
    INSERT INTO channel_settings (tenant_id, slack_channel_id, is_ext_shared,
                                  ext_shared_checked_at)
    VALUES (%s, %s, %s, now())
    ON CONFLICT (tenant_id, slack_channel_id) DO UPDATE
      SET is_ext_shared = EXCLUDED.is_ext_shared, ext_shared_checked_at = now()
"""


@dataclass(frozen=True)
class ChannelSettings:
    """What an admin set for a channel; None is "the default"."""

    template: str | None = None
    reply_mode: ReplyMode | None = None
    visibility: Visibility | None = None
    collections: tuple[str, ...] | None = None
    allowed_usergroups: tuple[str, ...] = ()
    is_ext_shared: bool | None = None  # cached; None: never asked
    shared_fresh: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> ChannelSettings:
        if row is None:
            return cls()
        collections = row["collections"]
        return cls(
            template=row["agent_template"],
            reply_mode=row["reply_mode"],
            visibility=row["visibility"],
            collections=tuple(collections) if collections is not None else None,
            allowed_usergroups=tuple(row["allowed_usergroups"] or ()),
            is_ext_shared=row["is_ext_shared"],
            shared_fresh=bool(row["shared_fresh"]),
        )


@dataclass(frozen=True)
class EffectiveSettings:
    """What a thread runs with; also the shape of the pin stored on the conversation."""

    template: str | None
    template_version: int | None
    prompt_version: int | None
    reply_mode: ReplyMode
    visibility: Visibility
    collections: tuple[str, ...] | None  # None: every collection the tenant has
    shared: bool

    def to_pin(self) -> dict[str, Any]:
        pin = asdict(self)
        pin["collections"] = list(self.collections) if self.collections is not None else None
        return pin

    @classmethod
    def from_pin(cls, pin: Mapping[str, Any]) -> EffectiveSettings:
        collections = pin.get("collections")
        return cls(
            template=pin.get("template"),
            template_version=pin.get("template_version"),
            prompt_version=pin.get("prompt_version"),
            reply_mode=pin.get("reply_mode") or "mention",
            visibility=pin.get("visibility") or "public",
            collections=tuple(collections) if collections is not None else None,
            shared=bool(pin.get("shared")),
        )


def effective(
    channel: ChannelSettings,
    tenant_template: str | None,
    shared: bool,
    templates: Mapping[str, AgentTemplate],
) -> EffectiveSettings:
    """The settings a new thread in this channel starts with. An admin's explicit choice
    for the channel wins over the template's, and the template's over the defaults."""
    name = channel.template or tenant_template
    template = templates.get(name) if name else None
    if name and template is None:
        # Removed from the deployment since it was chosen: run without one rather than fail.
        log.warning("template.unknown", template=name)
    if channel.collections is not None:
        collections: tuple[str, ...] | None = channel.collections
    elif shared:
        collections = (PUBLIC_COLLECTION,)
    elif template is not None:
        collections = tuple(template.collections)
    else:
        collections = None
    return EffectiveSettings(
        template=template.name if template else None,
        template_version=template.version if template else None,
        prompt_version=template.prompt.version if template else None,
        reply_mode=channel.reply_mode or "mention",
        visibility=channel.visibility or ("private" if shared else "public"),
        collections=collections,
        shared=shared,
    )


def load_channel(conn: Connection[dict[str, Any]], tenant_id: int, channel: str) -> ChannelSettings:
    row = conn.execute(
        SELECT_CHANNEL,
        {"tenant": tenant_id, "channel": channel, "max_age": SHARED_STATUS_MAX_AGE},
    ).fetchone()
    return ChannelSettings.from_row(row)


def is_shared(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    channel: str,
    known: ChannelSettings,
) -> bool:
    """Whether the channel is a Slack Connect channel, from the cache or Slack."""
    if known.is_ext_shared is not None and known.shared_fresh:
        return known.is_ext_shared
    try:
        info = client.conversations_info(channel=channel).get("channel") or {}
    except SlackApiError as exc:
        if is_transient(exc):
            # Rate limited or briefly down: Slack will say soon, and a guess here would be
            # pinned to the thread for good (a public channel's answers made private).
            raise
        # Unknown: assume shared, the safer guess, and ask again next time.
        log.warning("channel.info_failed", error=exc.response.get("error"))
        return True
    shared = bool(info.get("is_ext_shared"))
    conn.execute(STORE_SHARED, (tenant_id, channel, shared))
    return shared


def resolve(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    channel: str,
    conversation_id: int,
    templates: Mapping[str, AgentTemplate],
) -> EffectiveSettings:
    """The thread's pinned settings; on its first run, the channel's, pinned now."""
    pinned = _pin_of(conn, tenant_id, conversation_id)
    if pinned is not None:
        return EffectiveSettings.from_pin(pinned)
    known = load_channel(conn, tenant_id, channel)
    tenant_row = conn.execute(SELECT_TENANT_TEMPLATE, (tenant_id,)).fetchone()
    tenant_template = tenant_row["agent_template"] if tenant_row else None
    shared = is_shared(conn, client, tenant_id, channel, known)
    settings = effective(known, tenant_template, shared, templates)
    conn.execute(
        """UPDATE conversations SET pinned_settings = %s
           WHERE id = %s AND tenant_id = %s AND pinned_settings IS NULL""",
        (Jsonb(settings.to_pin()), conversation_id, tenant_id),
    )
    # Two first turns racing: whichever pinned first wins, for both.
    pinned = _pin_of(conn, tenant_id, conversation_id)
    return EffectiveSettings.from_pin(pinned) if pinned is not None else settings


def _pin_of(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int
) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT pinned_settings FROM conversations WHERE id = %s AND tenant_id = %s",
        (conversation_id, tenant_id),
    ).fetchone()
    pin: dict[str, Any] | None = row["pinned_settings"] if row else None
    return pin


# The console (review/console/channels.py) reads and changes a channel's settings on the
# listeners' event loop; these are its ways in.


async def load_channel_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, channel: str
) -> ChannelSettings:
    """`load_channel`, for the console."""
    cursor = await conn.execute(
        SELECT_CHANNEL,
        {"tenant": tenant_id, "channel": channel, "max_age": SHARED_STATUS_MAX_AGE},
    )
    return ChannelSettings.from_row(await cursor.fetchone())


async def tenant_template_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int
) -> str | None:
    """The workspace's own agent template, if it chose one."""
    row = await (await conn.execute(SELECT_TENANT_TEMPLATE, (tenant_id,))).fetchone()
    return row["agent_template"] if row else None


async def remember_shared_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, channel: str, shared: bool
) -> None:
    """What Slack just said of the channel being shared (Slack Connect), trusted for
    SHARED_STATUS_MAX_AGE."""
    await conn.execute(STORE_SHARED, (tenant_id, channel, shared))


async def store_channel_async(
    conn: AsyncConnection[dict[str, Any]],
    tenant_id: int,
    channel: str,
    updated_by: str,
    changes: Mapping[str, Any],
) -> None:
    """Set these columns of the channel's settings (creating its row if need be); the
    others keep their values."""
    columns = list(changes)
    query = sql.SQL(
        """INSERT INTO channel_settings (tenant_id, slack_channel_id, updated_by, {columns})
           VALUES (%s, %s, %s, {values})
           ON CONFLICT (tenant_id, slack_channel_id) DO UPDATE
             SET updated_by = EXCLUDED.updated_by, updated_at = now(), {updates}"""
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns
        ),
    )
    await conn.execute(query, (tenant_id, channel, updated_by, *changes.values()))
