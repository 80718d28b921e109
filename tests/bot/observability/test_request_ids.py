"""One request id follows a mention from the listener, through the queue, to the worker's logs."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg

from tests.support.conversation import mention, script_answer, unique_question, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]


def log_lines(stack: Stack, process: str, correlation_id: str) -> list[dict[str, Any]]:
    text = (stack.log_dir / f"{process}.log").read_text(errors="replace")
    lines = []
    for line in text.splitlines():
        if correlation_id in line and line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_a_mention_keeps_one_request_id_from_listener_to_worker(stack: Stack, llm, db: DB) -> None:
    """The id stored with the request is on the listener's and the worker's log lines,
    which also name the tenant, conversation, run and request."""
    question = unique_question("Who approves travel?")
    script_answer(llm, question, "Your manager does.")

    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)

    row = db.execute(
        "SELECT id, tenant_id, correlation_id FROM inbound_requests WHERE external_id = %s",
        (post.deliveries[0].event_id,),
    ).fetchone()
    assert row is not None
    correlation_id = row["correlation_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", correlation_id)

    recorded = [
        line
        for line in log_lines(stack, "serve", correlation_id)
        if line["event"] == "request.recorded"
    ]
    assert [line["request_id"] for line in recorded] == [row["id"]]

    def answered_line() -> dict[str, Any] | None:
        lines = log_lines(stack, "worker", correlation_id)
        return next((line for line in lines if line["event"] == "request.answered"), None)

    answered = wait_for(answered_line, timeout=10, message="the worker's request.answered line")
    assert answered["request_id"] == row["id"]
    assert answered["tenant_id"] == row["tenant_id"]
    assert answered["actor"] == "run_request"
    run = db.execute(
        "SELECT id, conversation_id FROM agent_runs WHERE request_id = %s", (row["id"],)
    ).fetchone()
    assert run is not None
    assert (answered["run_id"], answered["conversation_id"]) == (run["id"], run["conversation_id"])
