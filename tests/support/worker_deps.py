"""A worker's dependencies built in the test process, for running a job in-process
against the session's stack (its Slack emulator, database and LLM emulator)."""

from __future__ import annotations

from bot.agent.runs import WorkerDeps
from connectors.slack.web_client import make_web_client
from core.db import Pool
from core.knowledge import EmptyKnowledge, NoTools
from core.llm.providers import build_chain
from core.llm.structured import StructuredLLM
from guardrails.facade import Guardrails
from sandbox.openai_emulator import OpenAIEmulator
from tests.support.stack import Stack


def in_process_deps(
    stack: Stack, llm: OpenAIEmulator, pool: Pool, guardrails: Guardrails, max_steps: int = 6
) -> WorkerDeps:
    """No knowledge and no tools; the model is the emulator, with no retries, so a test's
    script is followed exactly, and JSON-schema Plan turns, which the scripts answer."""
    chain = build_chain(
        [("primary", llm.base_url, "k", "m")],
        timeout=5,
        max_retries=0,
        circuit_failures=100,
        circuit_reset=1,
    )
    return WorkerDeps(
        pool=pool,
        llm=StructuredLLM(chain, malformed_retries=0, tool_calling="json"),
        retriever=EmptyKnowledge(),
        tools=NoTools(),
        slack_client=lambda token: make_web_client(token, stack.slack.api_url),
        max_steps=max_steps,
        prices={},
        guardrails=guardrails,
    )
