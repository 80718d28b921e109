"""A model request refused as a whole reaches the person as what it is, not as an outage."""

from __future__ import annotations

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Failure
from tests.support.conversation import bot_replies, mention, unique_question, wait_for_answer
from tests.support.stack import Stack

TEMPLATE_ERROR = "Conversation roles must alternate user/assistant/user/assistant/..."


def test_a_refused_request_is_said_to_be_refused_once(
    stack: Stack, llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """Both providers answer 400 (a chat template refusing the message layout): each is
    asked once, the worker logs the status and the server's words, and the person reads
    that the model refused the request rather than that it is not responding."""
    question = unique_question("How long is the refund window?")
    llm.script(Failure(400, TEMPLATE_ERROR, repeat=True), match=question)
    llm_fallback.script(Failure(400, TEMPLATE_ERROR, repeat=True), match=question)

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)

    assert "the language model refused the request" in answer.text
    assert "not responding" not in answer.text
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    assert len(llm.requests(match=question)) == 1  # not retried (LLM_MAX_RETRIES=1 here)
    assert len(llm_fallback.requests(match=question)) == 1
    logged = [
        line
        for line in stack.worker.log_text().splitlines()
        if "llm.call_failed" in line and "roles must alternate" in line
    ]
    assert len(logged) >= 2 and all('"status": 400' in line for line in logged)
    assert "refund window" not in stack.worker.log_text()  # never the prompt
