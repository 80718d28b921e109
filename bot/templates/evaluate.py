"""Running a golden case: the real agent loop, with the case's fixtures standing in for
knowledge search and read-only tools, and external tools recorded as proposed actions.

Only the template's tools are offered, so a case also proves the template's tool list is
enough for its job and that nothing outside it is reachable.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from bot.agent.loop import AgentInput, run_agent
from bot.agent.steps import StepLog
from bot.templates.golden import SOURCES_HEADING, GoldenCase, Transcript
from core.agent_template import AgentTemplate
from core.db import Conn
from core.knowledge import AWAITING_APPROVAL, Passage, ToolResult
from core.llm.providers import CallRecord, UsageSink
from core.llm.structured import StructuredLLM
from core.schemas import ToolCall
from core.store import requests
from core.tools import Effect, Tool, ToolArgumentsError, ToolRegistry
from rag.attribution import Grounding


@dataclass
class FixtureToolbox:
    template: AgentTemplate
    registry: ToolRegistry
    case: GoldenCase
    transcript: Transcript

    def offered(self) -> list[Tool]:
        """The template's tools, as a production run under it is offered them."""
        tools = [self.registry.get(name) for name in self.template.tools]
        return [tool for tool in tools if tool is not None and tool.offered_to_model]

    def describe(self) -> list[dict[str, Any]]:
        return [tool.describe() for tool in self.offered()]

    def run(self, call: ToolCall, index: int) -> ToolResult:
        tool = self.registry.get(call.name) if call.name in self.template.tools else None
        if tool is None:
            self.transcript.refused.append(call.name)
            return ToolResult(
                call.name, ok=False, output=f"no tool named {call.name!r} is available"
            )
        try:
            arguments = tool.parse(call.arguments)
        except ToolArgumentsError as exc:
            return ToolResult(call.name, ok=False, output=str(exc))
        given = arguments.model_dump()
        self.transcript.tool_calls.append((tool.name, given))
        if tool.effect is Effect.EXTERNAL:
            self.transcript.proposed.append(tool.name)
            summary = tool.summarize(arguments)
            return ToolResult(
                tool.name, ok=True, output=f"{AWAITING_APPROVAL}: {summary}.", awaits_approval=True
            )
        return ToolResult(
            tool.name,
            ok=True,
            output=json.dumps(self.case.result_for(tool.name, given)),
            looked_up=tool.summarize(arguments),
        )


@dataclass(frozen=True)
class FixtureKnowledge:
    passages: list[Passage]

    def search(self, tenant_id: int, queries: list[str], *, limit: int) -> list[Passage]:
        return self.passages[:limit]


def golden_run_steps(conn: Conn, case_id: str, max_steps: int) -> StepLog:
    """A fresh tenant, conversation and run for one golden case, and its step log. Meant
    for a scratch database (core/scratch_database.py): the rows are kept."""
    tenant = conn.execute(
        "INSERT INTO tenants (name) VALUES (%s) RETURNING id", (f"golden {case_id}",)
    ).fetchone()
    assert tenant is not None
    conversation = conn.execute(
        """INSERT INTO conversations (tenant_id, channel_kind, external_key)
           VALUES (%s, 'email', %s) RETURNING id""",
        (tenant["id"], f"<golden-{uuid.uuid4().hex}@eval>"),
    ).fetchone()
    assert conversation is not None
    request_id = requests.add(
        conn,
        requests.NewRequest(
            tenant_id=tenant["id"],
            source="email",
            external_id=uuid.uuid4().hex,
            kind="golden",
            payload={},
        ),
    )
    assert request_id is not None
    run = conn.execute(
        """INSERT INTO agent_runs (tenant_id, conversation_id, request_id)
           VALUES (%s, %s, %s) RETURNING id""",
        (tenant["id"], conversation["id"], request_id),
    ).fetchone()
    assert run is not None
    return StepLog.load(conn, run["id"], tenant["id"], max_steps)


def run_case(
    template: AgentTemplate,
    case: GoldenCase,
    *,
    llm: StructuredLLM,
    registry: ToolRegistry,
    steps: StepLog,
    on_call: UsageSink | None = None,
    grounding: Grounding | None = None,
) -> Transcript:
    """`on_call` hears every model call of the run (a golden run is billed to no tenant);
    `grounding` is how Verify judges drafts (the worker's: with the embedder), by default
    word overlap alone."""
    transcript = Transcript()
    passages = [Passage(p.id, p.title, p.text, p.url) for p in case.passages]

    outcome = run_agent(
        AgentInput(
            tenant_id=steps.tenant_id,
            question=case.request,
            history=list(case.thread),
            # The template's prompt, as a production run under it gets (templates_in_use).
            instructions=template.prompt.text,
        ),
        llm=llm,
        retriever=FixtureKnowledge(passages),
        tools=FixtureToolbox(template, registry, case, transcript),
        steps=steps,
        on_call=on_call or _ignore_usage,
        grounding=grounding,
    )
    transcript.answer = outcome.text
    sources = outcome.text.partition(SOURCES_HEADING)[2]
    transcript.cited = [p.title for p in passages if p.title in sources]
    return transcript


def _ignore_usage(record: CallRecord) -> None:
    return None
