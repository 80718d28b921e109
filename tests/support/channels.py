"""Channels of their own for tests that change a channel's settings, so the session's
shared workspace is left as other tests expect it."""

from __future__ import annotations

import time

from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Channel
from testbed.markers import new_marker

ADMIN = "U0ADMIN"  # a workspace admin in the sandbox workspace


def new_channel(slack: SlackEmulator, *, shared: bool = False) -> str:
    """A fresh channel with everyone (the bot too) in it; `shared`: a Slack Connect one."""
    channel_id = "C0T" + new_marker(9).upper()
    everyone = {user.id for user in slack.workspace.users()}
    slack.workspace.add_channel(
        Channel(
            channel_id,
            f"test-{channel_id.lower()}",
            int(time.time()),
            ADMIN,
            everyone,
            is_ext_shared=shared,
        )
    )
    return channel_id


def admin_command(slack: SlackEmulator, channel: str, text: str) -> str:
    """`/agent TEXT` run by the admin in `channel`; the answer's text."""
    reply = slack.run_slash_command(ADMIN, channel, text)
    assert reply.response is not None, reply
    return str(reply.response["text"])
