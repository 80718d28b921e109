"""Ids the model names in an action's arguments, and whether anyone gave them.

A 1.5B model searched for a customer's ticket and, in the same plan, replied on ticket
1234567890, a number it made up. An action naming a record by an id (``id``,
``ticket_id``, ``contact_id``...) that appears nowhere in the message, the thread or
any tool result is never proposed: the agent loop (`bot.agent.loop`) holds it back for
the reads planned beside it, or refuses it, with the words here. A read of such an id
is refused too: it can only find nothing, and the model is told to search first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.knowledge import ToolResult
from core.schemas import ToolCall
from core.tools import Tool
from guardrails.injection import unwrap_untrusted


def unseen_ids(call: ToolCall, seen: str, tools: dict[str, Tool]) -> list[tuple[str, str]]:
    """The (argument, value) pairs of ``call`` that name a record by id (``id``,
    ``ticket_id``...) with a value that appears nowhere in ``seen``; a tool's own default
    (a calendar's "primary") names nothing the model made up."""
    tool = tools.get(call.name)
    fields = tool.arguments.model_fields if tool is not None else {}
    return [
        (key, str(value))
        for key, value in call.arguments.items()
        if (key == "id" or key.endswith("_id"))
        and value is not None
        and str(value) not in seen
        and not (key in fields and fields[key].default == value)
    ]


PLACEHOLDER = re.compile(r"^\s*(<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]|[A-Z][A-Z_]*_ID)\s*$")


def placeholder_ids(call: ToolCall) -> list[str]:
    """The arguments naming a record by id (as `unseen_ids` reads them) whose value is a
    placeholder, not an id: "<contact_id>", "{deal_id}", "[ticket id]", "CONTACT_ID"."""
    return [
        key
        for key, value in call.arguments.items()
        if (key == "id" or key.endswith("_id"))
        and isinstance(value, str)
        and PLACEHOLDER.match(value)
    ]


def seen_so_far(question: str, history: list[dict[str, str]], results: list[ToolResult]) -> str:
    """Everything a run's ids may come from: the message, the thread, the tools' results."""
    return "\n".join(
        [question, *(turn["content"] for turn in history)] + [result.output for result in results]
    )


def made_up(unseen: list[tuple[str, str]]) -> str:
    """The result of an action refused for an id nobody gave."""
    named = ", ".join(f"{key} {value}" for key, value in unseen)
    return (
        f"Not made: {named} is not in the message or in any result, so it may not exist. "
        "Find the record with a search first, then call it again with the id found."
    )


def not_made_yet(call: ToolCall, unseen: list[tuple[str, str]], results: list[ToolResult]) -> str:
    """What the model is told of an action held back for the reads beside it: which id
    nobody gave, and the ids those reads found for it (told them, the 1.5B model still
    asked to clarify instead of taking the ticket its search had found)."""
    named = ", ".join(f"{key} {value}" for key, value in unseen)
    found = found_for(unseen, results)
    hint = f" These results name: {', '.join(found)}." if found else ""
    return (
        f"Your call to {call.name} was not made yet: {named} is not in the message or in "
        f"any result so far.{hint} If the message asks for it, call it again now with the "
        "right id from these results."
    )


def found_for(unseen: list[tuple[str, str]], results: list[ToolResult]) -> list[str]:
    """The ids ``results`` name for the arguments in ``unseen`` (at most five)."""
    return list(dict.fromkeys(v for key, _ in unseen for v in ids_in(results, key)))[:5]


def ids_in(results: list[ToolResult], key: str) -> list[str]:
    """The values of ``key`` (and of plain ``id``) anywhere in the JSON of ``results``."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name in (key, "id") and isinstance(inner, str | int):
                    found.append(str(inner))
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for result in results:
        try:
            walk(json.loads(unwrap_untrusted(result.output)[1]))  # as the guardrails wrap it
        except ValueError:
            continue  # not JSON: a read that failed, or text
    return found
