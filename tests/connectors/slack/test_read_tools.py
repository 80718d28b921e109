"""Slack read tools through slack_sdk against the Slack emulator: a public thread is read,
and a search finds messages only in the public channels the bot is in, on behalf of the
event that started the run (its action_token), as Slack requires of a bot token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from connectors.slack.read_tools import slack_read_tools
from connectors.slack.web_client import make_web_client
from core.tools import ActionContext, Tool, ToolRegistry
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_search import ACTION_TOKEN_LIFETIME, issue_action_token
from sandbox.slack_workspace import Channel, SlackWorkspace
from testbed.markers import new_marker
from tests.support.conversation import mention, unique_question, wait_for_answer
from tests.support.stack import Stack

REQUESTER, APPROVER = "U0REQUESTER", "U0APPROVER"
# Seconds added to the workspace's clock, for a test to let an action_token expire.
CLOCK_SKEW = [0.0]


@pytest.fixture(scope="module")
def own_slack() -> Iterator[SlackEmulator]:
    """This module's own workspace (its clock can be moved), not the session's `slack`,
    which the end-to-end test's stack uses."""
    workspace = SlackWorkspace.sandbox(clock=lambda: time.time() + CLOCK_SKEW[0])
    with SlackEmulator(workspace) as emulator:
        bot = emulator.bot_user_id
        emulator.workspace.add_channel(
            Channel("C0DEALS", "deals", 0, REQUESTER, {REQUESTER, bot}, is_private=True)
        )
        yield emulator


@pytest.fixture(scope="module")
def tools(own_slack: SlackEmulator) -> ToolRegistry:
    return ToolRegistry.of(
        *slack_read_tools(lambda token: make_web_client(token, own_slack.api_url))
    )


def _call(
    tools: ToolRegistry,
    own_slack: SlackEmulator,
    name: str,
    *,
    action_token: str | None = None,
    **arguments: Any,
) -> Any:
    """Run a tool as a run started by an event would: with `action_token`, or by default
    with one as Slack would have put on that event ("" for an event without one)."""
    tool: Tool | None = tools.get(name)
    assert tool is not None
    if action_token is None:
        action_token = issue_action_token(own_slack.workspace)
    context = ActionContext(
        tenant_id=1,
        bot_token=own_slack.bot_token,
        requested_by=REQUESTER,
        action_token=action_token,
    )
    return tool.run(context, tool.parse(arguments), "unused")


def _post(own_slack: SlackEmulator, channel: str, text: str, thread_ts: str | None = None) -> str:
    return own_slack.workspace.post_message(
        channel, user=REQUESTER, text=text, thread_ts=thread_ts
    ).ts


def test_a_public_thread_is_read_oldest_first(
    tools: ToolRegistry, own_slack: SlackEmulator
) -> None:
    """Reading a thread gives its first message and every reply, in order, with authors."""
    parent = _post(own_slack, "C0SUPPORT", "VPN is down for the Berlin office")
    own_slack.workspace.post_message("C0SUPPORT", user=APPROVER, text="Looking", thread_ts=parent)
    _post(own_slack, "C0SUPPORT", "Back up now, thanks", parent)

    result = _call(
        tools, own_slack, "slack_read_thread", channel="<#C0SUPPORT|support>", thread_ts=parent
    )

    assert [(m["author"], m["text"]) for m in result["messages"]] == [
        (REQUESTER, "VPN is down for the Berlin office"),
        (APPROVER, "Looking"),
        (REQUESTER, "Back up now, thanks"),
    ]


def test_a_thread_the_bot_cannot_see_is_explained(
    tools: ToolRegistry, own_slack: SlackEmulator
) -> None:
    """A channel the bot is not in, or a message that is not there, reads as words."""
    elsewhere = _post(own_slack, "C0RANDOM", "lunch?")

    not_member = _call(
        tools, own_slack, "slack_read_thread", channel="C0RANDOM", thread_ts=elsewhere
    )
    missing = _call(
        tools, own_slack, "slack_read_thread", channel="C0SUPPORT", thread_ts="1000000000.000001"
    )

    assert not_member == {
        "error": "Slack: the assistant is not in that channel: invite it with /invite first"
    }
    assert missing == {"error": "Slack: no such message in that channel"}


def test_a_private_channel_thread_is_not_read(
    tools: ToolRegistry, own_slack: SlackEmulator
) -> None:
    """Even where the bot is a member, a private channel's thread is not passed on."""
    secret = _post(own_slack, "C0DEALS", "Acme discount is 40%")

    result = _call(tools, own_slack, "slack_read_thread", channel="C0DEALS", thread_ts=secret)

    assert result == {"error": "only threads in public channels can be read"}
    assert all(
        c.params.get("channel") != "C0DEALS" for c in own_slack.calls("conversations.replies")
    )


def test_search_finds_messages_only_where_the_bot_may_look(
    tools: ToolRegistry, own_slack: SlackEmulator
) -> None:
    """Search returns matches from public channels the bot is in (thread replies too), and
    none from a channel it is not in or a private one."""
    word = f"gizmo{new_marker(6)}"
    in_support = _post(own_slack, "C0SUPPORT", f"The {word} launch moved to May")
    parent = _post(own_slack, "C0GENERAL", "Roadmap questions here")
    reply = _post(own_slack, "C0GENERAL", f"Is {word} still on track?", parent)
    _post(own_slack, "C0RANDOM", f"{word} gossip")  # the bot is not in #random
    _post(own_slack, "C0DEALS", f"{word} pricing is secret")  # private

    result = _call(tools, own_slack, "slack_search_messages", query=f"what about {word}?")

    found = {(m["channel"], m["ts"]) for m in result["messages"]}
    assert found == {("C0SUPPORT", in_support), ("C0GENERAL", reply)}
    by_ts = {m["ts"]: m for m in result["messages"]}
    assert by_ts[reply]["permalink"].endswith(f"?thread_ts={parent}&cid=C0GENERAL")
    assert by_ts[in_support]["author"] == REQUESTER and by_ts[in_support]["is_bot"] is False
    call = own_slack.calls("assistant.search.context")[-1]
    assert call.params["channel_types"] == "public_channel"
    assert call.params["action_token"]


def test_search_follows_cursors(tools: ToolRegistry, own_slack: SlackEmulator) -> None:
    """More matches than Slack's page of 20 are gathered across pages, up to the limit."""
    word = f"batch{new_marker(6)}"
    for n in range(30):
        _post(own_slack, "C0SUPPORT", f"{word} item {n}")
    before = len(own_slack.calls("assistant.search.context"))

    result = _call(tools, own_slack, "slack_search_messages", query=word, limit=25)

    assert len(result["messages"]) == 25
    assert len({m["ts"] for m in result["messages"]}) == 25
    pages = own_slack.calls("assistant.search.context")[before:]
    assert [("cursor" in c.params, c.params["limit"]) for c in pages] == [(False, 20), (True, 20)]


def test_a_bot_search_without_a_valid_action_token_is_refused(
    tools: ToolRegistry, own_slack: SlackEmulator
) -> None:
    """With no action_token, a made-up one or one that has expired, Slack refuses the bot's
    search with invalid_action_token; the agent gets words it can pass on, not a crash."""
    word = f"sprocket{new_marker(6)}"
    _post(own_slack, "C0SUPPORT", f"The {word} order shipped")
    stale = issue_action_token(own_slack.workspace)
    CLOCK_SKEW[0] = ACTION_TOKEN_LIFETIME + 60
    try:
        expired = _call(tools, own_slack, "slack_search_messages", query=word, action_token=stale)
    finally:
        CLOCK_SKEW[0] = 0.0
    before = len(own_slack.calls("assistant.search.context"))

    missing = _call(tools, own_slack, "slack_search_messages", query=word, action_token="")
    forged = _call(
        tools, own_slack, "slack_search_messages", query=word, action_token="1.2.0123456789abcdef"
    )

    refusal = {
        "error": "Slack: Slack search works only while answering a message someone just sent "
        "(its action token is missing or has expired); ask again in a new message"
    }
    assert missing == forged == expired == refusal
    calls = own_slack.calls("assistant.search.context")[before:]
    assert [(c.response.get("ok"), c.response.get("error")) for c in calls] == [
        (False, "invalid_action_token"),
        (False, "invalid_action_token"),
    ]
    assert "action_token" not in calls[0].params


def test_a_persons_own_token_searches_without_an_action_token(own_slack: SlackEmulator) -> None:
    """The action_token is asked of bot tokens only: a user token searches as that person."""
    word = f"widget{new_marker(6)}"
    posted = _post(own_slack, "C0SUPPORT", f"{word} pricing sheet is ready")
    person = WebClient(token=own_slack.workspace.user(REQUESTER).token, base_url=own_slack.api_url)

    found = person.api_call("assistant.search.context", json={"query": word})

    assert [m["message_ts"] for m in found["results"]["messages"]] == [posted]


def test_a_mention_searches_slack_with_its_events_action_token(
    stack: Stack, llm_primary: OpenAIEmulator
) -> None:
    """End to end: the app_mention event carries an action_token, the worker's search sends
    it, Slack accepts it, and what the search found reaches the model's draft."""
    emulator = stack.slack
    word = f"zephyr{new_marker(6)}"
    emulator.workspace.post_message(
        "C0SUPPORT", user=APPROVER, text=f"The {word} rollout needs two more reviewers"
    )
    question = unique_question(f"What is the status of {word}?")
    search = {
        "name": "slack_search_messages",
        "arguments": {"query": word},
        "reason": "The team discussed it in Slack.",
    }
    llm_primary.script(
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": [search]}),
        # Having seen the search's result, nothing more to call.
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": []}),
        Reply(content={"answer": "It needs two more reviewers.", "citations": []}),
        match=question,
    )
    before = len(emulator.calls("assistant.search.context"))

    post = mention(emulator, question)
    answer = wait_for_answer(emulator, post.message.ts)

    delivered = post.deliveries[0].envelope["event"]
    assert delivered["type"] == "app_mention" and delivered["action_token"]
    calls = emulator.calls("assistant.search.context")[before:]
    assert [c.params.get("action_token") for c in calls] == [delivered["action_token"]]
    assert calls[0].ok
    drafts = [
        body
        for body in llm_primary.requests(match=question)
        if "two more reviewers" in json.dumps(body)
    ]
    assert drafts, "the search result never reached the model"
    assert "two more reviewers" in answer.text
