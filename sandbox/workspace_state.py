"""What the sandbox page shows, as one JSON-ready snapshot.

The page renders from this alone: people, channels with their messages and threads,
each person's ephemeral messages and open modal, and both halves of the mailbox. The
snapshot is small at sandbox scale, so the page is sent a whole new one whenever anything
in it changes (see `sandbox.workspace_web`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.mailbox import Mailbox
from sandbox.slack_workspace import Channel, Message, SlackWorkspace

JsonDict = dict[str, Any]
ASSISTANT_THREAD = "assistant_app_thread"  # the subtype of a side-panel thread's root


@dataclass
class Readiness:
    """How far the sandbox got in starting the product; the page shows it until ready."""

    ready: bool = False
    detail: str = "starting the product…"


def snapshot(workspace: SlackWorkspace, mailbox: Mailbox, readiness: Readiness) -> JsonDict:
    users = [u for u in workspace.users() if not u.deleted]
    roles = {user_id: role for role, user_id in workspace.roles.items()}
    # Channels, then each person's DM with the app (the page shows only the viewer's).
    channels = sorted(workspace.channels(), key=lambda c: c.is_im)
    return {
        "ready": readiness.ready,
        "status": readiness.detail,
        "team": workspace.team.name,
        "bot_user_id": workspace.app.bot_user_id,
        "users": [
            {
                "id": u.id,
                "name": u.name,
                "real_name": u.real_name,
                "title": u.title,
                "is_admin": u.is_admin,
                "is_bot": u.is_bot,
                "role": roles.get(u.id),
            }
            for u in users
        ],
        "channels": [
            {
                "id": c.id,
                "name": c.name,
                "purpose": c.purpose,
                "im_user": c.im_user,
                "members": sorted(c.members),
                "messages": _channel_messages(workspace, c.id),
            }
            for c in channels
        ],
        "ephemeral": [
            {
                "channel": m.channel,
                "user": m.user,
                "ts": m.ts,
                "text": m.text,
                "blocks": m.blocks,
                "thread_ts": m.thread_ts,
            }
            for m in workspace.ephemeral_messages()
        ],
        "modals": {
            u.id: view.to_slack() for u in users if (view := workspace.last_view(u.id)) is not None
        },
        "assistant_threads": _assistant_threads(workspace, channels),
        "mail": {
            "agent_inbox": mailbox.agent_inbox,
            "inbound": [m.to_json() for m in mailbox.inbound()],
            "outbox": [m.to_json() for m in mailbox.sent_by_agent()],
        },
    }


def _assistant_threads(workspace: SlackWorkspace, channels: list[Channel]) -> list[JsonDict]:
    """Each person's side-panel threads, oldest first: what the panel shows above and
    below the thread's messages."""
    threads = []
    for channel in channels:
        if channel.im_user is None:
            continue
        for root in workspace.history(channel.id):
            if root.subtype != ASSISTANT_THREAD:
                continue
            prompts = workspace.suggested_prompts(channel.id, root.ts)
            threads.append(
                {
                    "user": channel.im_user,
                    "channel": channel.id,
                    "ts": root.ts,
                    "title": workspace.assistant_title(channel.id, root.ts),
                    "prompts": prompts,
                    "status": workspace.assistant_status(channel.id, root.ts),
                }
            )
    return threads


def _channel_messages(workspace: SlackWorkspace, channel: str) -> list[JsonDict]:
    """Top-level messages, each with its replies."""
    shown = []
    for message in workspace.history(channel):
        replies = workspace.thread(channel, message.ts)[1:] if message.reply_ts else []
        shown.append({**_message(message), "replies": [_message(r) for r in replies]})
    return shown


def _message(message: Message) -> JsonDict:
    return {
        "ts": message.ts,
        "user": message.user,
        "subtype": message.subtype,
        "is_bot": message.bot_id is not None,
        "text": message.text,
        # People's messages carry the rich_text copy of their text; only an app's blocks
        # add something to show (sections, buttons).
        "blocks": message.blocks if message.bot_id is not None else None,
        "thread_ts": message.thread_ts,
        "reactions": [{"name": r.name, "users": list(r.users)} for r in message.reactions],
        "edited": message.edited is not None,
    }
