"""Tool arguments as JSON objects checked against each tool's own schema, through the real
worker and the LLM emulator: a plan whose arguments a tool rejects is sent back to the
model with the problem instead of ending the run."""

from __future__ import annotations

import json

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.review.conftest import DB, SUPPORT, tenant  # noqa: F401  # the approvals tenant
from tests.support.conversation import mention, unique_question, wait_for_answer
from tests.support.stack import Stack


def plan(*calls: dict[str, object]) -> Reply:
    return Reply(content={"intent": "answer", "search_queries": [], "tool_calls": list(calls)})


def test_invalid_arguments_are_sent_back_and_the_corrected_call_is_proposed(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    marker = new_marker(8)
    question = unique_question(f"Tell #support the release moved {marker}")
    reason = "The requester asked to tell the support team."
    llm.script(
        # No text: post_to_channel requires one.
        plan({"name": "post_to_channel", "arguments": {"channel": SUPPORT}, "reason": reason}),
        plan(
            {
                "name": "post_to_channel",
                "arguments": {"channel": SUPPORT, "text": f"The release moved {marker}"},
                "reason": reason,
            }
        ),
        Reply(content={"answer": "I'll post it once it is approved.", "citations": []}),
        match=question,
    )

    answer = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    # The person gets the action waiting for approval, with the corrected arguments
    assert "Waiting for approval" in answer.text
    action = db.execute(
        "SELECT tool, payload FROM pending_actions WHERE payload->>'text' = %s",
        (f"The release moved {marker}",),
    ).fetchone()
    assert action is not None and action["tool"] == "post_to_channel"
    # The model was told what was wrong, in the turn after its own plan
    first, again, _draft = llm.requests(match=question)
    told = again["messages"][-1]
    assert told["role"] == "user"
    assert "post_to_channel" in told["content"] and "text" in told["content"]
    assert "Field required" in told["content"]
    # Both plan turns offered the tool with its own argument schema, as a JSON object
    calls = first["response_format"]["json_schema"]["schema"]["properties"]["tool_calls"]
    shapes = calls["items"].get("anyOf", [calls["items"]])
    post = next(s for s in shapes if s["properties"]["name"].get("enum") == ["post_to_channel"])
    assert set(post["properties"]["arguments"]["required"]) >= {"channel", "text"}
    assert "arguments_json" not in json.dumps(first["response_format"])


def test_arguments_still_invalid_are_refused_and_the_run_still_answers(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    marker = new_marker(8)
    question = unique_question(f"Post in #support {marker}")
    broken = plan({"name": "post_to_channel", "arguments": {"channel": SUPPORT}, "reason": "asked"})
    llm.script(
        broken,
        broken,
        broken,
        Reply(content={"answer": f"I could not prepare that post {marker}.", "citations": []}),
        match=question,
    )

    answer = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    assert f"I could not prepare that post {marker}" in answer.text
    assert "Waiting for approval" not in answer.text
    requests = llm.requests(match=question)
    assert len(requests) == 4  # the plan, asked again twice, then the draft
    assert "invalid arguments for post_to_channel" in json.dumps(requests[-1]["messages"])
