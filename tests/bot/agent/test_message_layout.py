"""Every request the agent sends has the layout all chat templates accept: one system
message first, then user and assistant turns alternating from a user turn to a user turn.
Gemma and Mistral templates refuse anything else (HTTP 400, "roles must alternate"); others
silently drop a second system message. Checked on the request bodies the LLM emulator
received from the real worker."""

from __future__ import annotations

import itertools
import json
from typing import Any

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.review.conftest import DB, SUPPORT, tenant  # noqa: F401  # the approvals tenant
from tests.support.conversation import (
    GENERAL,
    PLAN,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

REQUESTER_DM = "D0REQUESTER"


def assert_alternating(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body["messages"]
    roles = [m["role"] for m in messages]
    assert roles[0] == "system" and roles.count("system") == 1, roles
    turns = roles[1:]
    assert turns and turns[0] == "user" and turns[-1] == "user", roles
    assert all(a != b for a, b in itertools.pairwise(turns)), roles
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)
    return list(messages)


def test_a_run_with_history_a_tool_call_and_a_rejected_draft(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    # Given a thread where the bot already answered once
    first = unique_question("Which plan is Globex on?")
    script_answer(llm, first, "Globex is on the Team plan.")
    post = mention(stack.slack, first)
    wait_for_answer(stack.slack, post.message.ts)

    # When a follow-up asks for an action, and the first draft states what nothing supports
    marker = new_marker(8)
    follow_up = unique_question(f"Tell #support about it {marker}")
    call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": f"Globex is on the Team plan {marker}"},
        "reason": "The requester asked to tell the support team.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        # A fact no source or tool result supports: Verify sends it back.
        Reply(content={"answer": "The SSO rollout finished on 3 May [4].", "citations": ["4"]}),
        Reply(content={"answer": "I will post it in #support once approved.", "citations": []}),
        match=follow_up,
    )
    mention(stack.slack, follow_up, thread_ts=post.message.ts)
    wait_for(
        lambda: any("once approved" in m.text for m in bot_replies(stack.slack, post.message.ts)),
        message="the follow-up's answer",
    )

    # Then every request of both runs had one system message and alternating turns
    bodies = llm.requests(match=first)  # the follow-up's requests carry it too
    assert len(bodies) == 2 + 3
    for body in bodies:
        assert_alternating(body)
    plan, rejected_draft, redraft = llm.requests(match=follow_up)
    # The earlier exchange is there as turns, the tools are described in the system message
    assert [m["role"] for m in plan["messages"]] == ["system", "user", "assistant", "user"]
    assert "post_to_channel(" in plan["messages"][0]["content"]
    # The tool result reaches the draft inside the user turn, with the question
    latest = rejected_draft["messages"][-1]
    assert latest["role"] == "user" and follow_up in latest["content"]
    assert "Waiting for approval, not done yet" in latest["content"]
    # The rejected draft is the assistant's turn, and why it was rejected the user's reply
    *_, context, previous, why = redraft["messages"]
    assert context == latest
    assert previous["role"] == "assistant" and "[4]" in previous["content"]
    assert why["role"] == "user" and "rejected" in why["content"]
    assert "Context" not in json.dumps(redraft["messages"][0])


def test_the_panel_says_which_channel_is_open_inside_the_user_turn(
    stack: Stack, llm: OpenAIEmulator
) -> None:
    opened = stack.slack.open_assistant_thread(REQUESTER, context_channel=GENERAL)
    # (Not "summarise this channel": that is a summary request, answered without the loop.)
    question = unique_question("What is this channel for?")
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": "Nothing much happened.", "citations": []}),
        match=question,
    )
    stack.slack.post_as_user(REQUESTER, REQUESTER_DM, question, opened.message.ts)
    plan = llm.wait_for_requests(count=2, match=question, timeout=30)[0]

    messages = assert_alternating(plan)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"viewing_channel"' in messages[1]["content"]
    assert messages[1]["content"].endswith(question)
