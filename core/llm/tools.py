"""One turn of a tool-using conversation: the model answers, or asks for tools to be run.

`StructuredLLM.tool_turn` offers tools the way each provider handles them:

- ``native``: the chat API's ``tools`` / ``tool_calls``, tried first;
- ``json``: a JSON-schema turn (``{"reply": ..., "tool_calls": [{"name", "arguments"}]}``)
  through the same response-format fallback as every structured call, for servers that
  refuse ``tools`` and for models that write their calls as text instead (Qwen2.5-Coder
  1.5B behind llama-server writes a fenced JSON block). Either is noticed, and the
  provider stays in JSON turns from then on.

Callers keep the conversation in the native shape whatever the mode: the assistant's
turn as `ToolTurn.assistant_message()`, each result as `tool_result_message()`; a JSON
turn gets those rewritten into plain alternating user and assistant turns.

Arguments arrive as JSON objects checked against each tool's JSON schema; a call that
does not fit is sent back to the model with the problem, up to the malformed-output
retries, before `MalformedOutput` is raised.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from core.llm.formats import JsonSchema, json_candidates

JSON_TURN_NAME = "ToolTurn"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is told about it; ``parameters`` is its arguments' JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> ToolSpec:
        """From `core.tools.Tool.describe()`'s shape (name, description, arguments)."""
        return cls(
            name=str(described["name"]),
            description=str(described.get("description", "")),
            parameters=dict(described.get("arguments") or described.get("parameters") or {}),
        )

    def native(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolRequest:
    """The model asks for ``name`` to run with ``arguments``; ``id`` pairs it with its result."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")


@dataclass(frozen=True)
class ToolTurn:
    """The model's turn: ``text`` for the person, or ``calls`` to run (or, rarely, both)."""

    text: str
    calls: list[ToolRequest]
    native: bool  # whether the provider's own tool calling carried it
    content: str = ""  # the reply's text as the model wrote it (a JSON turn's JSON)
    provider: str = ""  # which provider answered, and its model
    model: str = ""

    def assistant_message(self) -> dict[str, Any]:
        """This turn, to append to the conversation before the tools' results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.calls:
            message["tool_calls"] = [_native_call(call) for call in self.calls]
        return message


def tool_result_message(call: ToolRequest, result: str) -> dict[str, Any]:
    """A tool's result, to append after the turn that asked for it."""
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result}


def _native_call(call: ToolRequest) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def json_turn_schema(tools: Sequence[ToolSpec]) -> JsonSchema:
    """The JSON a model without native tool calling answers a tool turn with."""
    call_shapes = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [tool.name]},
                "arguments": tool.parameters or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return JsonSchema(
        name=JSON_TURN_NAME,
        schema={
            "type": "object",
            "properties": {
                "reply": {
                    "type": "string",
                    "description": "What to tell the person; empty when calling tools.",
                },
                "tool_calls": {
                    "type": "array",
                    "items": {"anyOf": call_shapes} if call_shapes else {"type": "object"},
                },
            },
            "required": ["reply", "tool_calls"],
            "additionalProperties": False,
        },
        # Tools' own schemas rarely meet OpenAI's strict-mode rules (every property
        # required, no defaults); validation here is what holds the arguments to them.
        strict=False,
    )


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """The tools in a few lines, for a JSON turn's system message."""
    lines = ["Tools you can use:"]
    for tool in tools:
        parameters = json.dumps(tool.parameters, separators=(",", ":"), ensure_ascii=False)
        lines.append(f"- {tool.name}: {tool.description} Arguments: {parameters}")
    lines.append(
        "When the answer needs something a tool can look up or do, call it: list the calls "
        "in tool_calls with reply empty, and their results come in the next message. Put "
        "an answer in reply, with tool_calls empty, only when you can answer from what "
        "this conversation already holds."
    )
    return "\n".join(lines)


def plain_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A native tool conversation as plain turns: the assistant's calls as its JSON
    reply, tool results as a user turn, and consecutive user turns joined, so roles
    still alternate for templates that insist on it."""
    names: dict[str, str] = {}
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                names[str(call.get("id", ""))] = str(function.get("name", ""))
                calls.append(
                    {"name": function.get("name"), "arguments": _loads(function.get("arguments"))}
                )
            content = json.dumps({"reply": message.get("content") or "", "tool_calls": calls})
            turns.append({"role": "assistant", "content": content})
            continue
        if role == "tool":
            name = message.get("name") or names.get(str(message.get("tool_call_id")), "tool")
            text = f"Result of {name}: {message.get('content', '')}"
            _append_user(turns, text)
            continue
        if role == "user" and isinstance(message.get("content"), str):
            _append_user(turns, str(message["content"]))
            continue
        turns.append(dict(message))
    return turns


def _append_user(turns: list[dict[str, Any]], text: str) -> None:
    if turns and turns[-1].get("role") == "user" and isinstance(turns[-1].get("content"), str):
        turns[-1] = {**turns[-1], "content": f"{turns[-1]['content']}\n\n{text}"}
    else:
        turns.append({"role": "user", "content": text})


def _loads(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


@dataclass(frozen=True)
class ParsedTurn:
    text: str
    calls: list[ToolRequest]
    problems: list[str]  # calls that could not be used, in words for the model


def check_calls(
    raw_calls: Sequence[tuple[str, Any, str | None]],
    tools: Sequence[ToolSpec],
    *,
    check_arguments: bool = True,
) -> tuple[list[ToolRequest], list[str]]:
    """(name, arguments as sent, id) → the usable calls and the problems with the rest.
    Without ``check_arguments`` only the arguments' being a JSON object is checked: the
    caller holds calls to its tools (and their names) to its own rules."""
    by_name = {tool.name: tool for tool in tools}
    calls: list[ToolRequest] = []
    problems: list[str] = []
    for name, sent, call_id in raw_calls:
        tool = by_name.get(name)
        if tool is None and check_arguments:
            problems.append(f"there is no tool called {name!r}")
            continue
        arguments = _loads(sent) if sent not in (None, "") else {}
        if not isinstance(arguments, dict):
            problems.append(f"the arguments of {name} are not a JSON object")
            continue
        error = _schema_error(tool.parameters, arguments) if tool and check_arguments else None
        if error is not None:
            problems.append(f"the arguments of {name} do not fit its schema: {error}")
            continue
        calls.append(
            ToolRequest(name, arguments, call_id) if call_id else ToolRequest(name, arguments)
        )
    return calls, problems


def _schema_error(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    if not schema:
        return None
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "the top level"
    return f"{error.message[:200]} at {where}"


def parse_json_turn(
    content: str, tools: Sequence[ToolSpec], *, check_arguments: bool = True
) -> ParsedTurn | None:
    """A JSON turn's content, or None when it is not one (then it is the model's text)."""
    for candidate in json_candidates(content):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        shaped = _as_turn(value)
        if shaped is None:
            continue
        reply, raw_calls = shaped
        calls, problems = check_calls(raw_calls, tools, check_arguments=check_arguments)
        return ParsedTurn(reply, calls, problems)
    return None


def _as_turn(value: Any) -> tuple[str, list[tuple[str, Any, str | None]]] | None:
    """{"reply", "tool_calls"}; or a bare call {"name", "arguments"} or a list of them, as
    models write when they were offered native tools but answer in text."""
    if isinstance(value, dict) and "tool_calls" in value:
        raw = value.get("tool_calls") or []
        reply = value.get("reply")
        if not isinstance(raw, list):
            return None
        return (reply if isinstance(reply, str) else ""), [_call_of(item) for item in raw]
    if isinstance(value, dict) and "name" in value and "arguments" in value:
        return "", [_call_of(value)]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(item, dict) and "name" in item and "arguments" in item for item in value)
    ):
        return "", [_call_of(item) for item in value]
    return None


def _call_of(item: Any) -> tuple[str, Any, str | None]:
    if not isinstance(item, dict):
        return "", None, None
    return str(item.get("name", "")), item.get("arguments"), None
