"""One mention makes one trace: the listener's request, then the job it queued, then each
agent step, with each model call inside the step that made it.

The job runs in this process, on a Dramatiq stub broker with the worker's middleware, so
an in-memory exporter can collect every span; the request, Slack and the model are the
session's real Postgres, Slack emulator and LLM emulator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.stub import StubBroker
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.agent.run_request import run_request
from bot.observability.tracing import build_tracing
from bot.queue.jobs import RUN_REQUEST, enqueue_request
from bot.queue.middleware import JobObservability
from connectors.slack.tools import post_to_channel_tool
from connectors.slack.web_client import make_web_client
from core.db import open_pool
from core.metrics import Metrics
from core.queues import AGENT_QUEUE
from core.settings import load_settings
from core.tools import ToolRegistry
from guardrails.facade import build_guardrails
from sandbox.openai_script import Reply
from testbed.conversation import plan_calling
from tests.support.conversation import script_answer, unique_question
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]
SUPPORT = "C0SUPPORT"


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    assert span.parent is not None, span.name
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def traced_run(  # type: ignore[no-untyped-def]
    stack: Stack, llm, database_url: str, request_id: int, tools: ToolRegistry | None = None
) -> list[ReadableSpan]:
    """Queue the stored request inside a listener span and run it on a Dramatiq worker
    with the product's middleware and dependencies, tracing into memory; its spans."""
    exporter = InMemorySpanExporter()
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    tracing = build_tracing(settings, "test", exporter=exporter)
    tracer = tracing.tracer
    broker = StubBroker()
    broker.emit_after("process_boot")
    broker.add_middleware(JobObservability(Metrics.create(), tracer))
    pool = open_pool(database_url, max_size=2)
    deps = in_process_deps(stack, llm, pool, build_guardrails(settings, pool))
    assert deps.llm is not None
    deps.llm.chain.tracer = tracer
    deps = dataclasses.replace(deps, tracer=tracer, tools=tools or deps.tools)
    dramatiq.Actor(
        lambda request_id: run_request(deps, request_id),
        broker=broker,
        actor_name=RUN_REQUEST,
        queue_name=AGENT_QUEUE,
        priority=0,
        options={"max_retries": 0},
    )
    with tracer.start_as_current_span("slack.request"):
        enqueue_request(broker, request_id, "app_mention", "trace-test")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    try:
        worker.start()
        broker.join(AGENT_QUEUE)
        worker.join()
    finally:
        worker.stop()
        pool.close()
        tracing.shutdown()
    return list(exporter.get_finished_spans())


def test_a_mention_is_one_trace_in_parent_order(
    stack: Stack, llm, db: DB, database_url: str
) -> None:
    """listener request > job > agent steps > model calls, all in one trace."""
    question = unique_question("Where is the style guide?")
    script_answer(llm, question, "In the design wiki.")
    request_id = store_mention(db, stack, f"<@{stack.slack.bot_user_id}> {question}").request_id

    # When the listener queues the mention inside its request span, and a worker runs it
    spans = traced_run(stack, llm, database_url, request_id)

    # Then the spans form one tree, in the order the work happened
    by_name = {span.name: span for span in spans}
    assert len({span.context.trace_id for span in spans}) == 1
    request, job = by_name["slack.request"], by_name[f"job {RUN_REQUEST}"]
    assert parent_of(job, spans) is request
    steps = [s for s in spans if s.name.startswith("agent.")]
    assert [s.name for s in sorted(steps, key=lambda s: s.start_time or 0)][:2] == [
        "agent.plan",
        "agent.retrieve",
    ]
    assert all(parent_of(step, spans) is job for step in steps)
    calls = [s for s in spans if s.name == "llm.call"]
    assert {parent_of(call, spans).name for call in calls} == {"agent.plan", "agent.draft"}  # type: ignore[union-attr]
    assert calls[0].attributes is not None and calls[0].attributes["llm.provider"] == "primary"


def test_each_tool_call_is_a_span_of_the_act_step(
    stack: Stack, llm, db: DB, database_url: str
) -> None:
    """A plan that calls a tool: the call has its own span, inside the Act step's."""
    question = unique_question("Tell #support the release moved to Friday")
    call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": "The release moved."},
        "reason": "The requester asked to tell the support team.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "I'll post that once it is approved.", "citations": []}),
        match=question,
    )
    request_id = store_mention(db, stack, f"<@{stack.slack.bot_user_id}> {question}").request_id

    slack = stack.slack
    tools = ToolRegistry.of(
        post_to_channel_tool(lambda token: make_web_client(token, slack.api_url))
    )
    spans = traced_run(stack, llm, database_url, request_id, tools)

    [tool] = [s for s in spans if s.name == "tool.call"]
    assert tool.attributes is not None and tool.attributes["tool.name"] == "post_to_channel"
    assert parent_of(tool, spans).name == "agent.act"  # type: ignore[union-attr]
