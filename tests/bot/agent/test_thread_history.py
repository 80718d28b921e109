"""Thread context comes from what the app stored, and Slack's history is read only for a
thread the app joins mid-way: through the real listener and worker, with the Slack
emulator's log of every Web API call."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
COLLEAGUE = "U0APPROVER"


def replies_reads(stack: Stack, thread_ts: str) -> int:
    return len(
        [c for c in stack.slack.calls("conversations.replies") if c.params.get("ts") == thread_ts]
    )


def test_a_second_turn_in_a_seen_thread_reads_nothing_from_slack(stack: Stack, llm: Any) -> None:
    """The follow-up's model request carries the first turn, yet conversations.replies is
    never called for the thread."""
    question = unique_question("Which plan is Globex on?")
    script_answer(llm, question, "Globex is on the Team plan.")
    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)

    follow_up = unique_question("How many seats does that include?")
    script_answer(llm, follow_up, "The Team plan includes 25 seats.")
    stack.slack.post_as_user(REQUESTER, GENERAL, follow_up, thread_ts=post.message.ts)
    wait_for(
        lambda: (
            [m.text for m in bot_replies(stack.slack, post.message.ts)][-1:]
            == ["The Team plan includes 25 seats."]
        ),
        message="the follow-up's answer",
    )

    contents = [m["content"] for m in llm.requests(match=follow_up)[-1]["messages"]]
    assert any(question in c for c in contents)
    assert "Globex is on the Team plan." in contents
    assert replies_reads(stack, post.message.ts) == 0


def test_a_mention_in_an_unseen_thread_reads_it_once(stack: Stack, llm: Any, db: DB) -> None:
    """People talked in a thread without the bot; mentioned there, it reads the thread once,
    stores it, and a later turn reads nothing more."""
    root = stack.slack.post_as_user(
        REQUESTER, GENERAL, unique_question("Customer Initech asks about invoices")
    )
    earlier = unique_question("They were billed twice in March")
    stack.slack.post_as_user(COLLEAGUE, GENERAL, earlier, thread_ts=root.message.ts)

    question = unique_question("What should we tell them?")
    script_answer(llm, question, "Apologise and refund the duplicate charge.")
    mention(stack.slack, question, thread_ts=root.message.ts)
    wait_for(
        lambda: (
            [m.text for m in bot_replies(stack.slack, root.message.ts)]
            == ["Apologise and refund the duplicate charge."]
        ),
        message="the answer in the thread",
    )
    assert replies_reads(stack, root.message.ts) == 1
    contents = [m["content"] for m in llm.requests(match=question)[-1]["messages"]]
    assert any(earlier in c for c in contents), "the thread's earlier messages are context"
    stored = db.execute(
        """SELECT m.role, m.author FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.external_key = %s ORDER BY m.external_id""",
        (f"{GENERAL}:{root.message.ts}",),
    ).fetchall()
    assert [(r["role"], r["author"]) for r in stored][:2] == [
        ("user", REQUESTER),
        ("user", COLLEAGUE),
    ]

    follow_up = unique_question("And how long will the refund take?")
    script_answer(llm, follow_up, "Five working days.")
    stack.slack.post_as_user(REQUESTER, GENERAL, follow_up, thread_ts=root.message.ts)
    wait_for(
        lambda: (
            [m.text for m in bot_replies(stack.slack, root.message.ts)][-1:]
            == ["Five working days."]
        ),
        message="the follow-up's answer",
    )
    contents = [m["content"] for m in llm.requests(match=follow_up)[-1]["messages"]]
    assert any(earlier in c for c in contents)
    assert replies_reads(stack, root.message.ts) == 1
