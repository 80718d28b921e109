"""The JSON the model must return at each LLM boundary of the loop.

`extra="forbid"` and no defaults keep every schema valid for strict JSON-schema mode,
which requires every property to be listed and no others allowed.

A Plan's tool calls carry their arguments as a JSON object. The schema sent with a Plan
turn (`plan_for`) lists one call shape per offered tool, each with that tool's own
argument schema, so a server that constrains its output to the schema (llama.cpp's
grammar, OpenAI's strict mode) can only write arguments the tool accepts; the loop still
validates every call against its tool, because not every server enforces the schema.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from core.tools import Tool

REASON = "Why this call helps the person, for the approver to read"
Model = TypeVar("Model", bound=BaseModel)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(description="The tool's arguments, as a JSON object")
    reason: str = Field(description=REASON)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The fields in the order the model writes them. Asked for its intent first, the 1.5B
    # model answered "Set ticket 318 to pending" with "decline" and no call; asked for its
    # calls first, it called zendesk_set_status, and three single actions it had missed
    # (or looked up in the wrong system) came out right.
    tool_calls: list[ToolCall] = Field(max_length=3)
    search_queries: list[str] = Field(
        max_length=3, description="What to look up in the company's knowledge, if anything"
    )
    intent: Literal["answer", "clarify", "decline"]


class Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="The reply to post in the thread, in Slack mrkdwn")
    citations: list[str] = Field(
        description='The numbers of the sources the answer cites, as strings, e.g. ["1", "3"]'
    )


# An answer without square brackets: what a draft may hold when it has no numbered sources.
# llama.cpp applies a pattern to the string as written in the JSON, escapes and all: a bare
# `"` or `\` must not match a plain character, or the string could never end (the server
# then wrote to its token cap and answered 500); JSON escapes (\n, \") are allowed.
NO_MARKERS = r'^([^\[\]"\\]|\\[nt"\\/])*$'


def draft_for(sources: int) -> type[Draft]:
    """The Draft to ask for when the model is shown `sources` numbered sources. With none,
    its schema (to the model) lets the answer hold no "[n]" and cite nothing: a 1.5B model
    shown no sources wrote "[1][2]...[20] [20] [20]..." until its token cap, three times
    over, and a server that constrains output to the schema (llama.cpp's grammar) can now
    not start that. It parses like `Draft`, as a server may ignore the pattern."""
    if sources:
        return Draft
    schema = Draft.model_json_schema()
    schema["properties"]["answer"]["pattern"] = NO_MARKERS
    schema["properties"]["citations"]["maxItems"] = 0
    return _described_as(Draft, schema)


# Where a draft's answer ends a sentence or a line: what a cut-off answer is kept up to.
_SENTENCE_END = re.compile(r"((?<=[.!?])\s+|\n+)")
_ANSWER_OPENING = re.compile(r'^\s*\{\s*"answer"\s*:\s*"')
_MARKERS = re.compile(r"\[\d+\]")


def salvaged_draft(content: str) -> Draft | None:
    """What a Draft cut off at its token cap still says: its answer's complete sentences,
    up to the first one it repeats, citing nothing (Verify adds the [n] markers the
    sentences earn). None when no complete sentence is left.

    A 1.5B model sometimes repeats a sentence until the cap (1,024 tokens, up to 300 s on
    a CPU); the sentences before the loop are usually a good answer, and asking again
    costs as long and may loop the same way."""
    opening = _ANSWER_OPENING.match(content)
    if opening is None:
        return None
    answer, closed = _json_string_prefix(content[opening.end() :])
    # Sentences and lines with what separates them, so a list keeps its line breaks.
    parts = _SENTENCE_END.split(answer)
    pieces = list(zip(parts[0::2], [*parts[1::2], ""], strict=True))
    if not closed:
        pieces = pieces[:-1]  # the cap cut into the last one
    kept = ""
    seen: set[str] = set()
    for piece, after in pieces:
        words = " ".join(_MARKERS.sub(" ", piece).lower().split())
        if words in seen:
            break  # the loop starts here
        if words:  # a line of bare markers ("[1][2][3]") says nothing and is left out
            seen.add(words)
            kept += piece + after
    if not seen:
        return None
    return Draft(answer=kept.strip(), citations=[])


def _json_string_prefix(raw: str) -> tuple[str, bool]:
    """The text of a JSON string literal that may be cut off anywhere, even in an escape,
    and whether it was closed (the cut came after it)."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == '"':
            return "".join(out), True
        if char != "\\":
            out.append(char)
            index += 1
            continue
        unicode = raw[index + 1 : index + 2] == "u"
        escape = raw[index : index + (6 if unicode else 2)]
        try:
            out.append(json.loads(f'"{escape}"'))
        except ValueError:
            break  # an escape cut in two
        index += len(escape)
    return "".join(out), False


def plan_for(tools: Sequence[Tool]) -> type[Plan]:
    """A Plan that parses like `Plan` but describes itself (to the model, as its response
    format) with one tool-call schema per offered tool: ``anyOf`` over the tools."""
    return _described_as(Plan, plan_json_schema(tools))


def _described_as(model: type[Model], schema: dict[str, Any]) -> type[Model]:
    """`model` under its own name, parsing as it does, but describing itself to the model
    server (its response format) with `schema`."""

    def model_json_schema(cls: type[Model], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(schema)

    namespace = {"model_json_schema": classmethod(model_json_schema), "__module__": __name__}
    return cast("type[Model]", type(model.__name__, (model,), namespace))


def plan_json_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    schema = Plan.model_json_schema()
    defs: dict[str, Any] = {}
    calls = [_call_schema(tool, defs) for tool in tools]
    array = schema["properties"]["tool_calls"]
    if calls:
        array["items"] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    else:
        array["items"] = _call_schema(None, defs)
        array["maxItems"] = 0
    schema["$defs"] = defs
    if not defs:
        del schema["$defs"]
    return schema


def _call_schema(tool: Tool | None, defs: dict[str, Any]) -> dict[str, Any]:
    if tool is None:
        name: dict[str, Any] = {"type": "string"}
        arguments: dict[str, Any] = strict_object({"type": "object", "properties": {}})
    else:
        name = {"type": "string", "enum": [tool.name]}
        arguments = _arguments_schema(tool, defs)
    return strict_object(
        {
            "type": "object",
            "properties": {
                "name": name,
                "arguments": arguments,
                "reason": {"type": "string", "description": REASON},
            },
        }
    )


def _arguments_schema(tool: Tool, defs: dict[str, Any]) -> dict[str, Any]:
    """The tool's argument schema made strict, its ``$defs`` moved to the top level (renamed
    if another tool has a different one of the same name); a schema whose references we
    cannot move is offered as a plain object (the loop still validates the call)."""
    raw = copy.deepcopy(tool.arguments.model_json_schema())
    own = raw.pop("$defs", {})
    text = json.dumps(raw)
    if "definitions" in raw or any(
        ref for ref in _refs(raw) + _refs(own) if not ref.startswith("#/$defs/")
    ):
        return {"type": "object"}
    renamed = {}
    for key, value in own.items():
        new = key if defs.get(key, value) == value else f"{tool.name}__{key}"
        renamed[key] = new
    for key, new in renamed.items():
        text = text.replace(f'"#/$defs/{key}"', f'"#/$defs/{new}"')
    for key, value in own.items():
        body = json.dumps(value)
        for old, new in renamed.items():
            body = body.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
        defs[renamed[key]] = _strict(json.loads(body))
    strict: dict[str, Any] = _strict(json.loads(text))
    return strict


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        return found + [ref for value in schema.values() for ref in _refs(value)]
    if isinstance(schema, list):
        return [ref for value in schema for ref in _refs(value)]
    return []


def _strict(schema: Any) -> Any:
    """Strict-mode form: every object lists all its properties as required and no others;
    a property that was optional may be null instead. Titles and defaults are dropped
    (they cost tokens and strict servers reject ``default``)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "default"):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _strict(item) for name, item in value.items()}
        elif key in ("enum", "const", "required", "examples"):
            out[key] = value
        else:
            out[key] = _strict(value)
    if isinstance(out.get("properties"), dict):
        required = set(schema.get("required", []))
        out["properties"] = {
            key: value if key in required else _nullable(value)
            for key, value in out["properties"].items()
        }
        out = strict_object(out)
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        return schema
    description = schema.get("description")
    inner = {key: value for key, value in schema.items() if key != "description"}
    return {
        "anyOf": [inner, {"type": "null"}],
        **({"description": description} if description else {}),
    }


def strict_object(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        **schema,
        "required": list(schema.get("properties", {})),
        "additionalProperties": False,
    }
