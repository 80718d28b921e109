"""Answers stream into the thread as the model writes them, and Verify still has the last
word: through `chatops serve` and `chatops worker`, the OpenAI emulator streaming its
reply in timed pieces (SSE) and the Slack emulator recording every Web API call."""

from __future__ import annotations

from typing import Any

import psycopg

from connectors.slack.streaming import PREVIEW_SUFFIX, REPLACED_NOTE
from rag.citations import NOT_FOUND_ANSWER
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from tests.support.conversation import (
    PLAN,
    bot_replies,
    mention,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
PIECE_DELAY = 0.05  # seconds between the model's streamed pieces (8 characters each)
LONG_ANSWER = (
    "To reset your VPN token, open the self-service portal and choose Devices. "
    "Pick the laptop whose token expired, press Reset token, and confirm with the code "
    "sent to your phone. The new token is active within a minute; sign out of the VPN "
    "client and back in to pick it up. If the portal says the device is locked, ask "
    "the IT desk to unlock it first, then start again from the Devices page."
)


def script_streamed(llm: Any, question: str, *drafts: dict[str, Any]) -> None:
    llm.script(
        Reply(content=PLAN),
        *(Reply(content=draft, piece_delay=PIECE_DELAY) for draft in drafts),
        match=question,
    )


def stream_calls(slack: SlackEmulator, method: str, ts: str) -> list[dict[str, Any]]:
    return [c.params for c in slack.calls(method) if c.params.get("ts") == ts]


def test_a_streamed_answer_arrives_in_pieces_and_ends_complete(
    stack: Stack, llm: Any, db: DB
) -> None:
    """The draft is streamed with several appendStream calls; the message then holds the
    whole answer, the placeholder is gone, and the run records the streamed message."""
    question = unique_question("How do I reset my VPN token?")
    script_streamed(llm, question, {"answer": LONG_ANSWER, "citations": []})

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)

    assert answer.text == LONG_ANSWER
    started = [
        c.params
        for c in stack.slack.calls("chat.startStream")
        if c.params.get("thread_ts") == post.message.ts
    ]
    assert len(started) == 1 and started[0]["recipient_user_id"] == "U0REQUESTER"
    appends = stream_calls(stack.slack, "chat.appendStream", answer.ts)
    assert len(appends) >= 2, "the answer should arrive in several pieces"
    # What was streamed is the answer's own text, in order, with nothing taken back.
    streamed = started[0]["markdown_text"] + "".join(a["markdown_text"] for a in appends)
    assert LONG_ANSWER.startswith(streamed) and len(streamed) < len(LONG_ANSWER) + 1
    assert len(stream_calls(stack.slack, "chat.stopStream", answer.ts)) == 1
    assert [m.ts for m in bot_replies(stack.slack, post.message.ts)] == [answer.ts]
    run = wait_for(
        lambda: db.execute(
            """SELECT r.* FROM agent_runs r JOIN inbound_requests q ON q.id = r.request_id
               WHERE q.external_id = %s AND r.status = 'answered'""",
            (post.deliveries[0].event_id,),
        ).fetchone()
    )
    assert run["reply_ts"] == answer.ts
    assert REPLACED_NOTE not in answer.text


def test_a_streamed_draft_that_fails_verification_is_replaced_with_a_note(
    stack: Stack, llm: Any
) -> None:
    """A draft (with no sources to cite) is streamed until it cites one it was never given;
    it fails Verify twice, and the message ends as the not-found answer with a note that
    the draft people saw was replaced."""
    question = unique_question("What is our refund window?")
    guess = {"answer": "Refunds are accepted within 90 days of purchase [4].", "citations": ["4"]}
    script_streamed(llm, question, guess, guess)

    post = mention(stack.slack, question)

    def replaced() -> Any:
        done = [m for m in bot_replies(stack.slack, post.message.ts) if REPLACED_NOTE in m.text]
        return done[-1] if done else None

    answer = wait_for(replaced, message="the replaced answer")
    assert answer.text == f"{NOT_FOUND_ANSWER}\n\n{REPLACED_NOTE}"
    started = [
        c.params
        for c in stack.slack.calls("chat.startStream")
        if c.params.get("thread_ts") == post.message.ts
    ]
    assert started and started[0]["markdown_text"].startswith("Refunds ")
    # The invented citation itself never reached the thread: the preview stopped at it.
    streamed = [started[0]["markdown_text"]] + [
        c["markdown_text"] for c in stream_calls(stack.slack, "chat.appendStream", answer.ts)
    ]
    assert "[4]" not in "".join(streamed)
    assert not stack.slack.workspace.is_streaming(answer.channel, answer.ts)
    assert len(bot_replies(stack.slack, post.message.ts)) == 1


def test_without_streaming_the_placeholder_is_updated_as_the_answer_grows(
    stack: Stack, llm: Any
) -> None:
    """Where Slack refuses chat.startStream, the "working on it" message shows the draft
    through chat.update, then the whole answer."""
    question = unique_question("How do I reset my VPN token, without streaming?")
    script_streamed(llm, question, {"answer": LONG_ANSWER, "citations": []})
    stack.slack.fail_next(
        "chat.startStream", error="method_not_supported_for_channel_type", retry_after=None
    )

    post = mention(stack.slack, question)
    placeholder = wait_for(
        lambda: next(iter(bot_replies(stack.slack, post.message.ts)), None),
        message="the placeholder",
    )

    def complete() -> Any:
        message = stack.slack.workspace.message(placeholder.channel, placeholder.ts)
        return message if message.text == LONG_ANSWER else None

    wait_for(complete, message="the complete answer in the placeholder")
    updates = [
        c.params["text"]
        for c in stack.slack.calls("chat.update")
        if c.params.get("ts") == placeholder.ts
    ]
    previews = [text for text in updates if text.endswith(PREVIEW_SUFFIX)]
    assert previews, "the draft should have been shown while it was written"
    assert all(LONG_ANSWER.startswith(p.removesuffix(PREVIEW_SUFFIX)) for p in previews)
    assert updates[-1] == LONG_ANSWER
    assert not [
        c for c in stack.slack.calls("chat.appendStream") if c.params.get("ts") == placeholder.ts
    ]
