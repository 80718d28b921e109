"""A run that goes past AGENT_TIME_LIMIT_SECONDS is stopped: one apology, no retry.

A real `chatops worker` with a short limit, against the scripted model: one question's
model keeps writing slowly (a piece every half second, for minutes), another's says
nothing at all, with a provider timeout longer than the limit. Both people get one
apology in their thread instead of silence, and neither run is tried again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Hang, Reply
from testbed.processes import ChatopsProcess
from tests.support.conversation import (
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
LIMIT_SECONDS = 5


@pytest.fixture
def limited_worker(stack: Stack) -> Iterator[ChatopsProcess]:
    """The session's worker swapped for one with a short time limit (and a provider timeout
    far longer than it), put back afterwards."""
    stack.worker.stop()
    env = stack.env | {
        "AGENT_TIME_LIMIT_SECONDS": str(LIMIT_SECONDS),
        "LLM_TIMEOUT_SECONDS": "120",
    }
    worker = ChatopsProcess(["worker"], env, stack.log_dir / "worker-time-limit.log")
    try:
        worker.start(ready_line="worker.started")
        yield worker
    finally:
        worker.stop()
        stack.start_worker()


def request_status(db: DB, stack: Stack, post_ts: str) -> dict[str, Any]:
    row = db.execute(
        """SELECT status, error FROM inbound_requests
           WHERE payload -> 'event' ->> 'ts' = %s""",
        (post_ts,),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_a_run_past_its_time_limit_gets_one_apology_and_no_retry(
    stack: Stack, llm: OpenAIEmulator, limited_worker: ChatopsProcess, db: DB
) -> None:
    # Given a worker that answers within its limit as usual
    warm = unique_question("Where is the office?")
    script_answer(llm, warm, "On the third floor.")
    warm_post = mention(stack.slack, warm)
    assert wait_for_answer(stack.slack, warm_post.message.ts, timeout=60).text == (
        "On the third floor."
    )

    # When one question's model writes on for minutes and another's says nothing
    writing = unique_question("Summarise every policy we have, in full")
    silent = unique_question("What changed in the travel policy?")
    endless = {"intent": "answer", "search_queries": ["policy " * 400], "tool_calls": []}
    llm.script(Reply(content=endless, piece_delay=0.5), match=writing)
    llm.script(Hang(300), match=silent)
    started = time.monotonic()
    writing_post = mention(stack.slack, writing)
    silent_post = mention(stack.slack, silent)
    llm.wait_for_requests(match=writing, timeout=20)
    llm.wait_for_requests(match=silent, timeout=20)

    # Then each thread gets an apology that says what happened, soon after the limit
    for post in (writing_post, silent_post):
        answer = wait_for_answer(stack.slack, post.message.ts, timeout=LIMIT_SECONDS + 25)
        assert answer.text.startswith(":warning: Sorry, I couldn't complete this request")
        assert f"longer than the {LIMIT_SECONDS} seconds" in answer.text
    assert time.monotonic() - started < LIMIT_SECONDS + 20

    # And nothing runs again: no second model request, no second reply, the request failed
    time.sleep(4)  # longer than a retry's backoff
    for question, post in ((writing, writing_post), (silent, silent_post)):
        assert len(llm.requests(match=question)) == 1
        assert len(bot_replies(stack.slack, post.message.ts)) == 1
        assert request_status(db, stack, post.message.ts)["status"] == "failed"
    log = limited_worker.log_text()
    assert log.count("request.time_limit_exceeded") == 2
