"""Direct messages and the assistant side panel, from Slack's events to the answer in the
panel's thread: `chatops serve` and `chatops worker` against the Slack emulator (signed
events in, every Web API call logged) and the scripted OpenAI emulator."""

from __future__ import annotations

from typing import Any

import psycopg

from bot.agent.assistant_panel import SUGGESTED_PROMPTS
from bot.agent.run_request import THINKING_TEXT
from connectors.slack.assistant_status import WORKING_STATUS
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Message
from tests.support.conversation import PLAN, REQUESTER, unique_question
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
REQUESTER_DM = "D0REQUESTER"


def answers(slack: SlackEmulator, thread_ts: str) -> list[str]:
    """The bot's finished replies in a thread of the requester's DM."""
    bot_id = slack.workspace.app.bot_id
    return [
        m.text
        for m in slack.thread(REQUESTER_DM, thread_ts)
        if m.bot_id == bot_id
        and m.text != THINKING_TEXT
        and not slack.workspace.is_streaming(m.channel, m.ts)
    ]


def ask(slack: SlackEmulator, text: str, thread_ts: str | None = None) -> Message:
    post = slack.post_as_user(REQUESTER, REQUESTER_DM, text, thread_ts)
    assert [d.status for d in post.deliveries] == [200]
    return post.message


def test_a_conversation_in_the_assistant_panel(stack: Stack, llm: Any, db: DB) -> None:
    """Opening the panel sets suggested prompts; a question there needs no mention, shows
    the thinking status while it works and is answered in the panel's thread; a follow-up
    is answered with the earlier turns as context, and Slack's history is never read."""
    # Given the person opens the side panel while looking at #support
    opened = stack.slack.open_assistant_thread(REQUESTER, context_channel="C0SUPPORT")
    assert [d.status for d in opened.deliveries] == [200, 200]
    root = opened.message
    shown = wait_for(
        lambda: stack.slack.workspace.suggested_prompts(REQUESTER_DM, root.ts),
        message="suggested prompts",
    )
    assert [p["title"] for p in shown["prompts"]] == [p["title"] for p in SUGGESTED_PROMPTS]

    # When they move to #general with the panel open, the thread's context follows
    stack.slack.change_assistant_context(REQUESTER, REQUESTER_DM, root.ts, "C0GENERAL")
    key = f"{REQUESTER_DM}:{root.ts}"
    wait_for(
        lambda: (
            (
                row := db.execute(
                    "SELECT assistant_context FROM conversations WHERE external_key = %s", (key,)
                ).fetchone()
            )
            and row["assistant_context"]["channel_id"] == "C0GENERAL"
        ),
        message="the panel's context stored",
    )

    # And ask a question in the panel's thread, without any mention
    question = unique_question("How long do refunds take?")
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": "Refunds take five working days.", "citations": []}, delay=0.5),
        match=question,
    )
    ask(stack.slack, question, thread_ts=root.ts)
    wait_for(
        lambda: answers(stack.slack, root.ts) == ["Refunds take five working days."],
        message="the answer in the panel's thread",
    )

    # Then the status was shown while working, then cleared once the answer was written
    statuses = [
        c
        for c in stack.slack.calls("assistant.threads.setStatus")
        if c.params.get("thread_ts") == root.ts
    ]
    assert statuses[0].params["status"] == WORKING_STATUS and statuses[0].ok
    wait_for(
        lambda: stack.slack.workspace.assistant_status(REQUESTER_DM, root.ts) == "",
        message="the status cleared",
    )
    final_update = [
        c
        for c in stack.slack.calls("chat.update")
        if c.params.get("text") == "Refunds take five working days."
    ][-1]
    assert statuses[0].timestamp < final_update.timestamp

    # And the panel's thread is titled after the question, and the model was told, as
    # data, which channel the person has open beside the panel
    assert stack.slack.workspace.assistant_title(REQUESTER_DM, root.ts) == question
    first_prompt = [m["content"] for m in llm.requests(match=question)[0]["messages"]]
    (where,) = [c for c in first_prompt if "viewing_channel" in c]
    assert '"id": "C0GENERAL"' in where and '"name": "general"' in where
    assert "not instructions" in where

    # When they follow up, again without a mention
    follow_up = unique_question("And for orders paid by card?")
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": "Card refunds take three days more.", "citations": []}),
        match=follow_up,
    )
    ask(stack.slack, follow_up, thread_ts=root.ts)
    wait_for(
        lambda: (
            answers(stack.slack, root.ts)
            == ["Refunds take five working days.", "Card refunds take three days more."]
        ),
        message="the follow-up's answer",
    )

    # Then the model saw the first turn, and nothing was read back from Slack
    contents = [m["content"] for m in llm.requests(match=follow_up)[-1]["messages"]]
    assert any(question in c for c in contents)
    assert "Refunds take five working days." in contents
    reads = [
        c
        for c in stack.slack.calls("conversations.replies")
        if c.params.get("channel") == REQUESTER_DM
    ]
    assert reads == []
    # The follow-up kept the first question's title.
    titles = [
        c.params["title"]
        for c in stack.slack.calls("assistant.threads.setTitle")
        if c.params.get("thread_ts") == root.ts
    ]
    assert titles == [question]
    # The thread's root is Slack's own message, not a question for the bot.
    asked = db.execute(
        """SELECT payload->'event'->>'ts' AS ts FROM inbound_requests
           WHERE kind = 'direct_message' AND payload->'event'->>'channel' = %s""",
        (REQUESTER_DM,),
    ).fetchall()
    assert root.ts not in {r["ts"] for r in asked}


def test_a_direct_message_is_answered_without_a_mention(stack: Stack, llm: Any) -> None:
    """A plain DM to the app, outside the panel, is answered in its thread."""
    question = unique_question("Where is the VPN guide?")
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": "It is on the IT wiki, under Remote work.", "citations": []}),
        match=question,
    )
    message = ask(stack.slack, question)
    wait_for(
        lambda: answers(stack.slack, message.ts) == ["It is on the IT wiki, under Remote work."],
        message="the answer to the DM",
    )
    # Not a panel thread: no title, and no panel context for the model.
    assert not [
        c
        for c in stack.slack.calls("assistant.threads.setTitle")
        if c.params.get("thread_ts") == message.ts
    ]
    prompt = [m["content"] for m in llm.requests(match=question)[0]["messages"]]
    assert not [c for c in prompt if "viewing_channel" in c]
