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
from collections.abc import Sequence
from typing import Any

from core.knowledge import Passage, ToolResult
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
        if _names_a_record(key)
        and value is not None
        and str(value) not in seen
        and not (key in fields and fields[key].default == value)
    ]


ANY_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
LONG_NUMBER = re.compile(r"(?<![\w.,])\d{5,}(?![\w]|[.,]\d)")
# A whole argument value that is an email address (not text that mentions one).
ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[A-Za-z]{2,}$")


def unseen_addresses(call: ToolCall, seen: str) -> list[tuple[str, str]]:
    """The (argument, address) pairs of ``call`` whose value, or an item of its list, is an
    email address that appears nowhere in ``seen`` (letter case aside)."""
    known = seen.lower()
    unseen = []
    for key, value in call.arguments.items():
        for item in value if isinstance(value, list) else [value]:
            address = item.strip() if isinstance(item, str) else ""
            if ADDRESS.match(address) and address.lower() not in known:
                unseen.append((key, address))
    return unseen


PLACEHOLDER = re.compile(r"^\s*(<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]|[A-Z][A-Z_]*_ID)\s*$")


def placeholder_ids(call: ToolCall) -> list[str]:
    """The arguments naming a record by id (as `unseen_ids` reads them) whose value is a
    placeholder, not an id: "<contact_id>", "{deal_id}", "[ticket id]", "CONTACT_ID"."""
    return [
        key
        for key, value in call.arguments.items()
        if _names_a_record(key) and isinstance(value, str) and PLACEHOLDER.match(value)
    ]


def unseen_numbers(call: ToolCall, seen: str) -> list[tuple[str, str]]:
    """The (argument, number) pairs of ``call``'s text arguments that hold a number of five
    or more digits (an order, a phone, an account) appearing nowhere in ``seen``: asked to
    note the order number Tom had emailed, the 1.5B model wrote "Order number: 12345"
    without reading his email. Ids are `unseen_ids`' business."""
    unseen = []
    for key, value in call.arguments.items():
        if _names_a_record(key):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                unseen += [(key, n) for n in LONG_NUMBER.findall(item) if n not in seen]
    return list(dict.fromkeys(unseen))


def seen_so_far(
    question: str,
    history: list[dict[str, str]],
    results: list[ToolResult],
    passages: Sequence[Passage] = (),
) -> str:
    """Everything a run's ids, addresses and numbers may come from: the message, the
    thread, what the tools found and the knowledge found. Not a refusal's words or an
    action's "sent for approval": they repeat the call's own arguments (a deal id the
    model made up, refused in one turn, was proposed for approval in the next)."""
    found = [r.output for r in results if r.ok and not r.awaits_approval]
    return "\n".join(
        [question, *(turn["content"] for turn in history), *found, *(p.text for p in passages)]
    )


def _named(unseen: list[tuple[str, str]]) -> str:
    return ", ".join(
        f"the number {value} in {key}" if _what(key, value) == "number" else f"{key} {value}"
        for key, value in unseen
    )


def made_up(unseen: list[tuple[str, str]], searches: Sequence[str] = ()) -> str:
    """The result of an action refused for an id, address or number nobody gave;
    ``searches``: the run's search tools, named so the model knows where to look (told
    only to "search first" for a deal, the 1.5B model gave up)."""
    found = _kind(unseen)
    with_tools = f" with {' or '.join(searches)}" if searches else " with a search"
    return (
        f"Not made: {_named(unseen)} is not in the message or in any result, so it may "
        f"not exist. Find it{with_tools} first, then call it again with the {found} found."
    )


def for_reply(unseen: list[tuple[str, str]]) -> str:
    """What the Draft is told of a call refused for what nobody gave: the outcome, in
    words for the reply, not the ids and instructions the planner was given."""
    return {
        "address": "I did not send anything: I could not find the address to send to.",
        "number": "I did not do it: I could not find the number it needs.",
    }.get(_kind(unseen), "I did not do it: I could not find the record it is for.")


def not_made_yet(call: ToolCall, unseen: list[tuple[str, str]], results: list[ToolResult]) -> str:
    """What the model is told of an action held back for the reads beside it: which id
    nobody gave, and the ids those reads found for it (told them, the 1.5B model still
    asked to clarify instead of taking the ticket its search had found)."""
    found = found_for(unseen, results)
    hint = f" These results name: {', '.join(found)}." if found else ""
    right = _kind(unseen)
    if right == "number":
        # Told to use "the right number from these results" when they held none (a search
        # that listed Tom's email, not its text), the model gave up on the note.
        return (
            f"Your call to {call.name} was not made yet: {_named(unseen)} is not in the "
            "message or in any result so far. If the message asks for it, first read what "
            "holds the right number (a thread or record these results name), then call "
            f"{call.name} again with it."
        )
    return (
        f"Your call to {call.name} was not made yet: {_named(unseen)} is not in the message "
        f"or in any result so far.{hint} If the message asks for it, call it again now with "
        f"the right {right} from these results."
    )


def still_to_do(
    call: ToolCall, unseen: list[tuple[str, str]], results: list[ToolResult]
) -> str | None:
    """What the model is reminded of in later turns about an action refused or held back
    for what nobody gave, once ``results`` name something it could use instead; None
    while they name nothing."""
    found = found_for(unseen, results)
    if not found:
        return None
    right = _kind(unseen)
    return (
        f"Still not done: {call.name}, not made because {_named(unseen)} was in no message "
        f"or result. The results now name: {', '.join(found)}. If the message asks for "
        f"it, call {call.name} now with the right {right} from these results."
    )


def _what(key: str, value: str) -> str:
    """What an unseen value is: an "address", a record's "id" or a "number" in a text."""
    if ADDRESS.match(value):
        return "address"
    return "id" if _names_a_record(key) else "number"


def _kind(unseen: list[tuple[str, str]]) -> str:
    """What the unseen values all are (`_what`); "id" when they differ."""
    kinds = {_what(key, value) for key, value in unseen}
    return kinds.pop() if len(kinds) == 1 else "id"


def _names_a_record(key: str) -> bool:
    """Whether an argument names a record by id: ``id``, ``ticket_id``, ``contact_id``..."""
    return key == "id" or key.endswith("_id")


def found_for(unseen: list[tuple[str, str]], results: list[ToolResult]) -> list[str]:
    """The ids (or addresses) ``results`` name for the arguments in ``unseen`` (at most
    five); none for a number in a text, which results do not label."""
    named: list[str] = []
    for key, value in unseen:
        what = _what(key, value)
        if what == "address":
            named += addresses_in(results)
        elif what == "id":
            named += ids_in(results, key)
    return list(dict.fromkeys(named))[:5]


def addresses_in(results: list[ToolResult]) -> list[str]:
    """The email addresses in what ``results`` found, in order."""
    text = "\n".join(
        unwrap_untrusted(r.output)[1] for r in results if r.ok and not r.awaits_approval
    )
    return [m.group(0) for m in ANY_ADDRESS.finditer(text)]


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
