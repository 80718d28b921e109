"""A worker killed mid-run: the job is retried elsewhere and the thread still gets one reply."""

from __future__ import annotations

from typing import Any

import psycopg

from sandbox.openai_script import Hang, Reply
from tests.support.conversation import PLAN, bot_replies, mention, unique_question, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]


def test_killed_worker_is_retried_without_a_second_post(stack: Stack, llm, db: DB) -> None:
    """SIGKILL during the LLM call; another worker resumes from the stored steps and edits the
    same placeholder, so the person sees exactly one reply."""
    question = unique_question("What regions do we ship to?")
    # Given a worker that has posted its placeholder and is waiting on the model's draft
    llm.script(
        Reply(content=PLAN),
        Hang(60),
        Reply(content={"answer": "We ship to the EU and the US.", "citations": []}),
        match=question,
    )
    post = mention(stack.slack, question)
    llm.wait_for_requests(count=2, match=question, timeout=20)
    assert len(bot_replies(stack.slack, post.message.ts)) == 1

    # When that worker process dies at once, and a new worker comes up
    stack.worker.kill()
    stack.start_worker()

    # Then the job is handed over, resumed, and the placeholder becomes the answer
    answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)
    assert answer.text == "We ship to the EU and the US."
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    # The run is recorded as answered just after the reply is edited.
    run = wait_for(
        lambda: db.execute(
            """SELECT r.* FROM agent_runs r JOIN inbound_requests q ON q.id = r.request_id
               WHERE q.external_id = %s AND r.status <> 'running'""",
            (post.deliveries[0].event_id,),
        ).fetchone(),
        timeout=20,
        message="the run to finish",
    )
    assert run["attempts"] == 2 and run["status"] == "answered"
    # The plan made before the crash was replayed from Postgres, not asked for again.
    plan_requests = [
        r
        for r in llm.requests(match=question)
        if r["response_format"]["json_schema"]["name"] == "Plan"
    ]
    assert len(plan_requests) == 1
