"""A worker killed while streaming an answer: the retried run finishes that same message,
and nothing is left "streaming" or answered twice."""

from __future__ import annotations

from sandbox.openai_script import Reply
from tests.faults.conftest import FaultStack
from tests.support.conversation import PLAN, bot_replies, mention, unique_question
from tests.support.processes import wait_for

ANSWER = (
    "Badges are renewed at the front desk on the ground floor, every weekday between "
    "nine and five; bring the old badge and a photo ID."
)
HELD = 30.0  # seconds Slack's answer to chat.startStream is held: the worker dies meanwhile


def test_worker_killed_after_the_stream_started_finishes_the_same_message(
    faults: FaultStack, llm
) -> None:
    """SIGKILL after chat.startStream took effect but before the worker heard its ts: the
    retry finds that stream, closes it and writes the answer into it; the placeholder is
    gone and the thread holds exactly one reply."""
    question = unique_question("Where do I renew my badge?")
    draft = {"answer": ANSWER, "citations": []}
    llm.script(
        Reply(content=PLAN), Reply(content=draft, piece_delay=0.05, repeat=True), match=question
    )
    faults.slack.delay_response("chat.startStream", HELD)

    post = mention(faults.slack, question)
    started = wait_for(
        lambda: [
            c
            for c in faults.slack.calls("chat.startStream")
            if c.params.get("thread_ts") == post.message.ts
        ],
        timeout=30,
        message="the stream to start",
    )
    stream_ts = started[0].response["ts"]
    faults.worker.kill()
    assert faults.slack.workspace.is_streaming("C0GENERAL", stream_ts)
    faults.start_worker()

    # The whole answer (a preview shows whole words only, so never all of it).
    answer = wait_for(
        lambda: next(
            (m for m in bot_replies(faults.slack, post.message.ts) if m.text.startswith(ANSWER)),
            None,
        ),
        timeout=60,
        message="the whole answer",
    )
    assert answer.ts == stream_ts
    assert not faults.slack.workspace.is_streaming("C0GENERAL", stream_ts)
    assert [m.ts for m in bot_replies(faults.slack, post.message.ts)] == [stream_ts]
    # Only the attempt that died started a stream; the retry finished that one.
    assert [
        c
        for c in faults.slack.calls("chat.startStream")
        if c.params.get("thread_ts") == post.message.ts
    ] == started
