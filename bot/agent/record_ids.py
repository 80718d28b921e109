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
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from core.knowledge import Passage, ToolResult
from core.schemas import ToolCall
from core.tools import Tool, ToolArgumentsError
from guardrails.injection import unwrap_untrusted

Arguments = Mapping[str, Any]  # a call's arguments


def appears(value: str, seen: str) -> bool:
    """Whether ``value`` is in ``seen`` as a whole: not inside a longer word or number.
    Reading Jo's email, the 1.5B model replied on "ticket 1", which no one had named; it
    passed as seen, a "1" being inside her order number and the thread's id."""
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", seen) is not None


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
        and not appears(str(value), seen)
        and not (key in fields and fields[key].default == value)
    ]


def mistyped_ids(
    call: ToolCall, said: str, results: list[ToolResult], tools: dict[str, Tool]
) -> list[tuple[str, str]]:
    """The (argument, value) pairs of ``call`` naming a record of one kind (``deal_id``)
    by the id of another kind in ``results`` (a contact's), that nobody gave in ``said``
    (the message and the thread). Asked to move Globex's deal, the 1.5B model moved "deal
    101": the id of the contact its search had found. Only kinds the run's tools name by
    id count; an id the results give no kind is not judged."""
    known = {key[:-3] for tool in tools.values() for key in _id_fields(tool)}
    kinds, untyped = record_kinds(results)
    wrong = []
    for key, value in call.arguments.items():
        kind = _kind_named(key, call.arguments)
        text = str(value)
        found = kinds.get(text, set()) & known
        if (
            kind in known
            and found
            and kind not in found
            and text not in untyped
            and text not in said
        ):
            wrong.append((key, text))
    return wrong


def _kind_named(key: str, arguments: Arguments) -> str:
    """The kind of record an argument names by id: ``deal`` for ``deal_id``; for a
    ``record_id`` beside a ``record_type`` (HubSpot's read), that type; else ""."""
    if key == "record_id":
        kind = arguments.get("record_type")
        return kind if isinstance(kind, str) else ""
    return key[:-3] if key.endswith("_id") else ""


def record_kinds(results: list[ToolResult]) -> tuple[dict[str, set[str]], dict[str, None]]:
    """Each id in the JSON of ``results`` with the kinds of record it is the id of, and the
    ids of no known kind. A kind comes from the key (``deal_id``), the list it is in
    (``"deals": ["9002"]``, ``"contacts": [{"id": "101"}]``) or the record's ``type``."""
    kinds: dict[str, set[str]] = {}
    untyped: dict[str, None] = {}  # in the order found

    def note(value: str | int, kind: str | None) -> None:
        if kind:
            kinds.setdefault(str(value), set()).add(kind)
        else:
            untyped[str(value)] = None

    def walk(value: Any, kind: str | None) -> None:
        if isinstance(value, dict):
            own = value["type"] if isinstance(value.get("type"), str) else kind
            for name, inner in value.items():
                if isinstance(inner, bool):
                    continue
                if isinstance(inner, str | int):
                    if name == "id":
                        note(inner, own)
                    elif _names_a_record(name) and name != "record_id":
                        note(inner, name[:-3])
                elif isinstance(inner, list):
                    for item in inner:
                        if isinstance(item, str | int) and not isinstance(item, bool):
                            note(item, _singular(name))
                        else:
                            walk(item, _singular(name))
                else:
                    walk(inner, None)

    for result in results:
        if not result.ok or result.awaits_approval:
            continue
        try:
            walk(json.loads(unwrap_untrusted(result.output)[1]), None)
        except ValueError:
            continue  # not JSON: a read that failed, or text
    return kinds, untyped


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _id_fields(tool: Tool) -> list[str]:
    return [name for name in tool.arguments.model_fields if name.endswith("_id")]


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


# A stand-in for an id, not an id: "<contact_id>", "{deal_id}", "[ticket id]", "CONTACT_ID",
# and a template's reference to an earlier result, "{{result.hubspot_search_contacts[0].id}}".
PLACEHOLDER = re.compile(
    r"^\s*(<[^<>]*>|\{[^{}]*\}|\{\{[^{}]*\}\}|\$\{[^{}]*\}|\[[^\[\]]*\]|[A-Z][A-Z_]*_ID)\s*$"
)


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
                unseen += [(key, n) for n in LONG_NUMBER.findall(item) if not appears(n, seen)]
    return list(dict.fromkeys(unseen))


def seen_so_far(
    question: str,
    history: list[dict[str, str]],
    results: list[ToolResult],
    passages: Sequence[Passage] = (),
) -> str:
    """Everything a run's ids, addresses and numbers may come from: the message, the
    thread, what the tools found and the knowledge found. Not a refusal's words or an
    action's "waiting for approval": they repeat the call's own arguments (a deal id the
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


def _mistyped(
    unseen: list[tuple[str, str]], results: Sequence[ToolResult], arguments: Arguments
) -> list[tuple[str, str, str, set[str]]]:
    """The pairs of ``unseen`` whose value ``results`` give as the id of another kind of
    record, each with the kind its argument names (``arguments``: the call's) and the
    kinds the results give."""
    kinds, _ = record_kinds(list(results))
    wrong = []
    for key, value in unseen:
        kind = _kind_named(key, arguments)
        if kind and value in kinds and kind not in kinds[value]:
            wrong.append((key, value, kind, kinds[value]))
    return wrong


def _missing(
    unseen: list[tuple[str, str]],
    results: Sequence[ToolResult],
    arguments: Arguments,
    so_far: str = "",
) -> str:
    """Why the values of ``unseen`` may not be used: the id of another kind of record in
    the results (`mistyped_ids`), or in no message or result at all. Told only that 101
    was a contact's id, and then that "reading that contact may show its deals", the 1.5B
    model searched the contacts again; a HubSpot contact's record lists its deals."""
    other = [
        f"{key} {value} is the id of a {' or '.join(sorted(of))} in the results, not of a "
        f"{kind}: read {' or '.join(sorted(of))} {value} to find its {kind}s"
        for key, value, kind, of in _mistyped(unseen, results, arguments)
    ]
    if other:
        return "; ".join(other)
    return f"{_named(unseen)} is not in the message or in any result{so_far}"


def made_up(
    unseen: list[tuple[str, str]],
    searches: Sequence[str] = (),
    results: Sequence[ToolResult] = (),
    arguments: Arguments | None = None,
) -> str:
    """The result of an action refused for an id, address or number nobody gave (or an id
    of another kind of record in ``results``); ``searches``: the run's search tools, named
    so the model knows where to look (told only to "search first" for a deal, the 1.5B
    model gave up)."""
    found = _kind(unseen)
    arguments = arguments or {}
    with_tools = f" with {' or '.join(searches)}" if searches else " with a search"
    missing = _missing(unseen, results, arguments)
    if _mistyped(unseen, results, arguments):
        named = found_for(unseen, list(results), arguments)
        hint = f" These results name: {', '.join(named)}." if named else ""
        return f"Not made: {missing}.{hint} Then call it again with the right {found}."
    return (
        f"Not made: {missing}, so it may not exist. Find it{with_tools} first, then call it "
        f"again with the {found} found."
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
    found = found_for(unseen, results, call.arguments)
    hint = f" These results name: {', '.join(found)}." if found else ""
    right = _kind(unseen)
    if right == "number":
        # Told to use "the right number from these results" when they held none (a search
        # that listed Tom's email, not its text), the model gave up on the note.
        return (
            f"Your call to {call.name} was not made yet: {_missing(unseen, results, call.arguments, ' so far')}"
            ". If the message asks for it, first read what "
            "holds the right number (a thread or record these results name), then call "
            f"{call.name} again with it."
        )
    return (
        f"Your call to {call.name} was not made yet: {_missing(unseen, results, call.arguments, ' so far')}."
        f"{hint} If the message asks for it, call it again now with the right {right} from "
        "these results."
    )


def still_to_do(
    call: ToolCall, unseen: list[tuple[str, str]], results: list[ToolResult]
) -> str | None:
    """What the model is reminded of in later turns about an action refused or held back
    for what nobody gave, once ``results`` name something it could use instead; None
    while they name nothing."""
    found = found_for(unseen, results, call.arguments)
    if not found:
        return None
    right = _kind(unseen)
    why = (
        _missing(unseen, results, call.arguments)
        if _mistyped(unseen, results, call.arguments)
        else f"{_named(unseen)} was in no message or result"
    )
    return (
        f"Still not done: {call.name}, not made because {why}. The results now name: "
        f"{', '.join(found)}. If the message asks for it, call {call.name} now with the "
        f"right {right} from these results."
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


def read_of_the_one_found(
    call: ToolCall, unseen: list[tuple[str, str]], results: list[ToolResult]
) -> ToolCall | None:
    """``call``, a read naming its record by an id nobody gave, with that id replaced by
    the one record of its kind that ``results`` name, or None when they name none or
    several. The 1.5B model wrote its read beside the search it depended on, the id
    written as "{{result.hubspot_search_contacts[0].id}}", "<ticket_id>" or a made-up
    number; told the id the search had found, it searched again instead of reading. A
    read changes nothing, so taking the one record found is safe; an action never is.
    An id of another kind of record in the results (a contact's, for a deal) is not
    replaced: the model is told what it is."""
    kinds, _ = record_kinds(results)
    arguments = dict(call.arguments)
    for key, value in unseen:
        kind = _kind_named(key, call.arguments)
        if _what(key, value) != "id" or not kind or value in kinds:
            return None
        found = [id_ for id_, of in kinds.items() if kind in of]
        if len(found) != 1:
            return None
        arguments[key] = found[0]
    return ToolCall(name=call.name, arguments=arguments, reason=call.reason)


def found_for(
    unseen: list[tuple[str, str]], results: list[ToolResult], arguments: Arguments | None = None
) -> list[str]:
    """The ids (or addresses) ``results`` name for the arguments in ``unseen`` (at most
    five; ``arguments``: the call's, which say what kind of record a ``record_id`` is);
    none for a number in a text, which results do not label."""
    named: list[str] = []
    for key, value in unseen:
        what = _what(key, value)
        if what == "address":
            named += addresses_in(results)
        elif what == "id":
            named += ids_in(results, _kind_named(key, arguments or {}))
    return list(dict.fromkeys(named))[:5]


def addresses_in(results: list[ToolResult]) -> list[str]:
    """The email addresses in what ``results`` found, in order."""
    text = "\n".join(
        unwrap_untrusted(r.output)[1] for r in results if r.ok and not r.awaits_approval
    )
    return [m.group(0) for m in ANY_ADDRESS.finditer(text)]


def ids_in(results: list[ToolResult], kind: str) -> list[str]:
    """The ids in the JSON of ``results`` that an id of ``kind`` may take: for "deal" the
    ids of deals first, then ids of no known kind, never a contact's (told "These results
    name: 101, 9002" for a deal, the 1.5B model moved deal 101, a contact); for "" any."""
    kinds, untyped = record_kinds(results)
    typed = [value for value, of in kinds.items() if not kind or kind in of]
    return typed + [
        value for value in untyped if value not in typed and (not kind or value not in kinds)
    ]


# A kind of record, then its id: "ticket 977", "Gmail thread 18f3a9c2d4e5b607", "deal
# #9002". An id has a digit and at least three characters, so "plan B" names nothing.
NAMED_ID = re.compile(r"\b([A-Za-z]+)\s*(?:#|:|no\.)?\s*#?([A-Za-z0-9]*\d[A-Za-z0-9]*)\b")


def ids_named(said: str) -> dict[str, str]:
    """Each id ``said`` names beside its kind ("ticket 977" gives {"977": "ticket"})."""
    named: dict[str, str] = {}
    for kind, value in NAMED_ID.findall(said):
        if len(value) >= 3:
            named.setdefault(value, _singular(kind.lower()))
    return named


def read_of_the_id_given(
    call: ToolCall,
    said: str,
    tools: dict[str, Tool],
    reads: set[str],
    unread: Mapping[str, str] | None = None,
) -> ToolCall | None:
    """``call``, a search whose words hold the id of a record the person named in ``said``
    ("Summarise ticket 977", "Gmail thread 18f3a9c2d4e5b607"), as the read of that record
    by the run's read tool for its kind in the search's own system; None for any
    other call. The 1.5B model searched tickets for "ticket:977" and Gmail for "thread
    18f3a9c2d4e5b607", found nothing, and answered that it needed the ticket number. A
    search engine does not look records up by id; a read does, and changes nothing.

    So is a search of that system in other words while the record is ``unread`` (id to
    kind: named in the latest message, and in no call the model planned): asked to read "Gmail
    thread 18f3a9c2d4e5b700", the 1.5B model searched Gmail for "Hank's latest email",
    found nothing, and apologised that it could not find the email."""
    if call.name not in reads or "search" not in call.name:
        return None
    unread = unread or {}
    words = " ".join(str(value) for value in call.arguments.values() if isinstance(value, str))
    # Only a read of the search's own system: searching Gmail for "subject:ticket 858"
    # looks for the email about the ticket, not the ticket.
    system = call.name.split("_", 1)[0] + "_"
    own_reads = [name for name in sorted(reads) if name.startswith(system) and "search" not in name]
    for value, kind in {**ids_named(said), **unread}.items():
        if not (appears(value, words) or value in unread):
            continue
        readers = [
            (name, arguments)
            for name in own_reads
            if (arguments := _read_arguments(tools[name], kind, value))
        ]
        for name, arguments in readers if len(readers) == 1 else []:
            try:
                parsed = tools[name].parse(arguments).model_dump(mode="json")
            except ToolArgumentsError:
                continue
            return ToolCall(name=name, arguments=parsed, reason=call.reason)
    return None


def _read_arguments(tool: Tool, kind: str, value: str) -> dict[str, str] | None:
    """The arguments with which ``tool`` reads the record of ``kind`` with id ``value``: by
    its ``<kind>_id`` (``ticket_id``), or by ``record_type`` and ``record_id`` where the
    type may be ``kind`` (HubSpot's read); None if it reads no such record."""
    fields = tool.arguments.model_fields
    if f"{kind}_id" in fields:
        return {f"{kind}_id": value}
    if (
        "record_id" in fields
        and "record_type" in fields
        and kind in get_args(fields["record_type"].annotation)
    ):
        return {"record_type": kind, "record_id": value}
    return None


def unread_in(question: str, calls: Sequence[ToolCall]) -> dict[str, str]:
    """The ids ``question`` names beside their kind (id to kind) that none of ``calls``
    names in its arguments."""
    given = " ".join(str(value) for call in calls for value in call.arguments.values())
    return {value: kind for value, kind in ids_named(question).items() if not appears(value, given)}


def not_read_yet(
    results: list[ToolResult], made: Sequence[ToolCall], tools: dict[str, Tool], reads: set[str]
) -> list[str]:
    """The records ``results`` name ("deal 9002") that one of the run's ``reads`` could
    read and none of the calls ``made`` has read, at most five. Having read Globex's
    contact, whose record lists deal 9002, the 1.5B model searched the contacts for
    "Globex renewal" again and again, and answered that the renewal "is associated with
    deal 9002"."""
    kinds, _ = record_kinds(results)
    asked = {str(value) for call in made for value in call.arguments.values()}
    readers = [tools[name] for name in sorted(reads) if "search" not in name]
    named = [
        f"{kind} {value}"
        for value, of in kinds.items()
        if value not in asked
        for kind in sorted(of)
        if any(_read_arguments(tool, kind, value) for tool in readers)
    ]
    return named[:5]


def holds_nothing(output: str) -> bool:
    """Whether a read's JSON output holds no record: ``[]``, or only empty lists."""
    try:
        found = json.loads(unwrap_untrusted(output)[1])
    except ValueError:
        return False
    if isinstance(found, list):
        return not found
    lists = (
        [value for value in found.values() if isinstance(value, list)]
        if isinstance(found, dict)
        else []
    )
    return bool(lists) and not any(lists)
