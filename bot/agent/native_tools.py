"""The Plan turn through the chat API's own tool calling (LLM_TOOL_CALLING native or auto).

The model is offered the run's tools in the request's ``tools``, with the knowledge base
as one more read tool, ``search_knowledge``; it answers with ``tool_calls``, and each
later turn shows it the results as ``role: tool`` messages after its own call turn. What
it called becomes the same `Plan` the JSON-schema turn gives (search_knowledge calls as
its search queries), so the rest of the loop (persisted steps, idempotency keys, repeated
calls, argument checks, pending actions) is the same in both modes.

Models that do not use native tools (Qwen2.5-Coder 1.5B behind llama-server writes its
call or a whole plan as JSON text) are read anyway: `plan_of` takes a plan or a call
found in the text, and says the turn came as JSON, so the loop can give that model
JSON-schema turns from then on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from core.knowledge import Passage, ToolResult
from core.llm.structured import parse_reply
from core.llm.tools import ToolSpec, ToolTurn
from core.schemas import REASON, Plan, ToolCall
from core.tools import Effect, Tool
from guardrails.injection import InjectionScreen
from rag.citations import shown_to_model, sources_block

SEARCH_TOOL = "search_knowledge"
SEARCH_SPEC = ToolSpec(
    SEARCH_TOOL,
    "Search the company's knowledge base (documents, policies, how-tos). The passages "
    "found are also given to you, numbered, when the answer is written.",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "A short search query"}
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)
APPROVAL_NOTE = " Needs a person's approval before it happens."
NOT_MADE_AGAIN = (
    "Not made again: the same call was made earlier in this conversation; do not call it again."
)

How = Literal["native", "json"]  # how a turn's plan arrived
Message = dict[str, Any]


def specs(offered: Sequence[Tool]) -> list[ToolSpec]:
    """The tools as the request's ``tools``: knowledge search first, then each offered tool
    with its argument schema; one that needs approval also takes a ``reason`` for the
    approver (as the JSON plan's calls carry one)."""
    shown = [SEARCH_SPEC]
    for tool in offered:
        parameters = copy.deepcopy(tool.arguments.model_json_schema())
        description = tool.description.strip()
        properties = parameters.get("properties")
        if tool.effect is Effect.EXTERNAL:
            description += APPROVAL_NOTE
            if isinstance(properties, dict) and "reason" not in properties:
                properties["reason"] = {"type": "string", "description": REASON}
        shown.append(ToolSpec(tool.name, description, parameters))
    return shown


@dataclass(frozen=True)
class PlanTurn:
    plan: Plan
    how: How


def plan_of(turn: ToolTurn, schema: type[Plan], offered: Sequence[Tool]) -> PlanTurn:
    """The plan in a tool turn: its native calls, or the plan or calls it wrote as JSON
    text; a turn with only words plans nothing more (the answer is drafted next)."""
    if not (turn.native and turn.calls):
        written = _plan_in(turn.content, schema)
        if written is not None:
            return PlanTurn(written, "json")
    how: How = "native" if turn.native else "json"
    needs_reason = _needing_reason(offered)
    queries: list[str] = []
    calls: list[ToolCall] = []
    for call in turn.calls:
        if call.name == SEARCH_TOOL:
            query = str(call.arguments.get("query", "")).strip()
            if query and query not in queries:
                queries.append(query)
            continue
        arguments = dict(call.arguments)
        if call.name in needs_reason:
            # The approver reads why; a model that gave no reason may have said it.
            reason = str(arguments.pop("reason", None) or turn.text or "")
        else:
            reason = ""
        calls.append(ToolCall(name=call.name, arguments=arguments, reason=reason))
    return PlanTurn(
        Plan(intent="answer", search_queries=queries[:3], tool_calls=calls[:3]),
        how,
    )


def _needing_reason(offered: Sequence[Tool]) -> set[str]:
    return {tool.name for tool in offered if tool.effect is Effect.EXTERNAL}


def _plan_in(content: str, schema: type[Plan]) -> Plan | None:
    if "{" not in content:
        return None
    try:
        return parse_reply(schema, content)
    except ValidationError:
        return None


def call_turn(plan: Plan, turn: int, offered: Sequence[Tool]) -> tuple[Message, list[str]]:
    """The assistant's turn that made ``plan``'s calls, as the chat API has it, and the
    calls' ids: search calls first, then the tools, with ids made from the turn's number
    and the call's place (the same on every retry of the run). A call to a tool that
    needs approval carries its reason, as the model gave it."""
    needs_reason = _needing_reason(offered)
    calls = [(SEARCH_TOOL, {"query": query}) for query in plan.search_queries]
    for call in plan.tool_calls:
        arguments = dict(call.arguments)
        if call.reason and call.name in needs_reason:
            arguments.setdefault("reason", call.reason)
        calls.append((call.name, arguments))
    ids = [f"call_{turn}_{index}" for index in range(len(calls))]
    message: Message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for call_id, (name, arguments) in zip(ids, calls, strict=True)
        ],
    }
    return message, ids


def follow_up(
    plan: Plan,
    turn: int,
    offered: Sequence[Tool],
    *,
    made: Sequence[ToolCall],
    results: Sequence[ToolResult],
    passages: Sequence[Passage],
    max_output_chars: int,
    deferred: Sequence[tuple[ToolCall, str]] = (),
) -> list[Message]:
    """``plan``'s call turn and a ``role: tool`` result for every call in it: a search
    gets the passages found so far, a call that was made gets its result (cut to
    ``max_output_chars``), one ``deferred`` until the model has seen those results gets
    what it is told about it, one repeated from an earlier turn is told it was not made."""
    message, ids = call_turn(plan, turn, offered)
    searches = len(plan.search_queries)
    found = sources_block(passages)[:max_output_chars]
    outputs = [found] * searches
    screen = InjectionScreen()  # its heuristics: no model is loaded for this
    for call in plan.tool_calls:
        at = next((i for i, m in enumerate(made) if m is call), None)
        if at is None:
            told = next((text for d, text in deferred if d is call), NOT_MADE_AGAIN)
            outputs.append(told)
            continue
        result = results[at]
        shown = shown_to_model(result.output, screen)[:max_output_chars]
        outputs.append(shown if result.ok else f"The call failed: {shown}")
    return [
        message,
        *(
            _tool_message(call_id, name, output)
            for call_id, name, output in zip(ids, _names(message), outputs, strict=True)
        ),
    ]


def rejected_calls(
    plan: Plan, problems: dict[int, str], turn: int, offered: Sequence[Tool]
) -> list[Message]:
    """A plan whose calls' arguments do not fit their tools, sent back the native way:
    its call turn, then for each call why it was not made, and that all its calls are to
    be made again with those arguments corrected."""
    message, ids = call_turn(plan, turn, offered)
    searches = len(plan.search_queries)
    again = "Not made yet: call it again together with the corrected calls."
    outputs = [again] * searches
    for index in range(len(plan.tool_calls)):
        problem = problems.get(index)
        outputs.append(
            f"Not made: {problem}. Call it again with the arguments corrected."
            if problem
            else again
        )
    return [
        message,
        *(
            _tool_message(call_id, name, output)
            for call_id, name, output in zip(ids, _names(message), outputs, strict=True)
        ),
    ]


def _names(message: Message) -> list[str]:
    return [str(call["function"]["name"]) for call in message["tool_calls"]]


def _tool_message(call_id: str, name: str, output: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": output}
