"""Slack read tools through slack_sdk against the Slack emulator: a public thread is read,
and a search finds messages only in the public channels the bot is in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.agent.tools import ActionContext, Tool, ToolRegistry
from connectors.slack.read_tools import slack_read_tools
from connectors.slack.web_client import make_web_client
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Channel

REQUESTER, APPROVER = "U0REQUESTER", "U0APPROVER"


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        bot = emulator.bot_user_id
        emulator.workspace.add_channel(
            Channel("C0DEALS", "deals", 0, REQUESTER, {REQUESTER, bot}, is_private=True)
        )
        yield emulator


@pytest.fixture(scope="module")
def tools(slack: SlackEmulator) -> ToolRegistry:
    return ToolRegistry.of(*slack_read_tools(lambda token: make_web_client(token, slack.api_url)))


def _call(tools: ToolRegistry, slack: SlackEmulator, name: str, **arguments: Any) -> Any:
    tool: Tool | None = tools.get(name)
    assert tool is not None
    context = ActionContext(tenant_id=1, bot_token=slack.bot_token, requested_by=REQUESTER)
    return tool.run(context, tool.parse(json.dumps(arguments)), "unused")


def _post(slack: SlackEmulator, channel: str, text: str, thread_ts: str | None = None) -> str:
    return slack.workspace.post_message(channel, user=REQUESTER, text=text, thread_ts=thread_ts).ts


def test_a_public_thread_is_read_oldest_first(tools: ToolRegistry, slack: SlackEmulator) -> None:
    """Reading a thread gives its first message and every reply, in order, with authors."""
    parent = _post(slack, "C0SUPPORT", "VPN is down for the Berlin office")
    slack.workspace.post_message("C0SUPPORT", user=APPROVER, text="Looking", thread_ts=parent)
    _post(slack, "C0SUPPORT", "Back up now, thanks", parent)

    result = _call(
        tools, slack, "slack_read_thread", channel="<#C0SUPPORT|support>", thread_ts=parent
    )

    assert [(m["author"], m["text"]) for m in result["messages"]] == [
        (REQUESTER, "VPN is down for the Berlin office"),
        (APPROVER, "Looking"),
        (REQUESTER, "Back up now, thanks"),
    ]


def test_a_thread_the_bot_cannot_see_is_explained(
    tools: ToolRegistry, slack: SlackEmulator
) -> None:
    """A channel the bot is not in, or a message that is not there, reads as words."""
    elsewhere = _post(slack, "C0RANDOM", "lunch?")

    not_member = _call(tools, slack, "slack_read_thread", channel="C0RANDOM", thread_ts=elsewhere)
    missing = _call(
        tools, slack, "slack_read_thread", channel="C0SUPPORT", thread_ts="1000000000.000001"
    )

    assert not_member == {
        "error": "Slack: the assistant is not in that channel: invite it with /invite first"
    }
    assert missing == {"error": "Slack: no such message in that channel"}


def test_a_private_channel_thread_is_not_read(tools: ToolRegistry, slack: SlackEmulator) -> None:
    """Even where the bot is a member, a private channel's thread is not passed on."""
    secret = _post(slack, "C0DEALS", "Acme discount is 40%")

    result = _call(tools, slack, "slack_read_thread", channel="C0DEALS", thread_ts=secret)

    assert result == {"error": "only threads in public channels can be read"}
    assert all(c.params.get("channel") != "C0DEALS" for c in slack.calls("conversations.replies"))


def test_search_finds_messages_only_where_the_bot_may_look(
    tools: ToolRegistry, slack: SlackEmulator
) -> None:
    """Search returns matches from public channels the bot is in (thread replies too), and
    none from a channel it is not in or a private one."""
    word = f"gizmo{uuid.uuid4().hex[:6]}"
    in_support = _post(slack, "C0SUPPORT", f"The {word} launch moved to May")
    parent = _post(slack, "C0GENERAL", "Roadmap questions here")
    reply = _post(slack, "C0GENERAL", f"Is {word} still on track?", parent)
    _post(slack, "C0RANDOM", f"{word} gossip")  # the bot is not in #random
    _post(slack, "C0DEALS", f"{word} pricing is secret")  # private

    result = _call(tools, slack, "slack_search_messages", query=f"what about {word}?")

    found = {(m["channel"], m["ts"]) for m in result["messages"]}
    assert found == {("C0SUPPORT", in_support), ("C0GENERAL", reply)}
    by_ts = {m["ts"]: m for m in result["messages"]}
    assert by_ts[reply]["permalink"].endswith(f"?thread_ts={parent}&cid=C0GENERAL")
    assert by_ts[in_support]["author"] == REQUESTER and by_ts[in_support]["is_bot"] is False
    call = slack.calls("assistant.search.context")[-1]
    assert call.params["channel_types"] == "public_channel"


def test_search_follows_cursors(tools: ToolRegistry, slack: SlackEmulator) -> None:
    """More matches than Slack's page of 20 are gathered across pages, up to the limit."""
    word = f"batch{uuid.uuid4().hex[:6]}"
    for n in range(30):
        _post(slack, "C0SUPPORT", f"{word} item {n}")
    before = len(slack.calls("assistant.search.context"))

    result = _call(tools, slack, "slack_search_messages", query=word, limit=25)

    assert len(result["messages"]) == 25
    assert len({m["ts"] for m in result["messages"]}) == 25
    pages = slack.calls("assistant.search.context")[before:]
    assert [("cursor" in c.params, c.params["limit"]) for c in pages] == [(False, 20), (True, 20)]
