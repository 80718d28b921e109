"""One Plan turn's tool calls: which run now, which wait for the reads beside them, and
which are refused, with what the model is told of each.

The agent loop (`bot.agent.loop`) plans, hands a turn's new calls here, and shows the
model the results in the next turn. Two rules come from what a 1.5B model did:

- An action naming a record by an id, or a person by an email address, or stating a
  long number (an order's), that appears nowhere in the message, the thread, any result
  or the knowledge found is not made (`bot.agent.record_ids`): the model searched for
  Maria's ticket and, in the same plan, replied on a ticket number it made up. Planned
  beside reads, it waits for them once (when another turn surely fits), and the model
  proposes it again with the id they found; otherwise it is refused. A read of such an
  id is never held: it reads the one record of its kind the results name, if they name
  exactly one, and is refused otherwise.
- An action that earlier results can speak against (`Tool.conflicts`: an invite to
  someone busy then) runs after the reads planned beside it and is judged on every result
  so far: the model checked Priya's calendar, saw her busy, and proposed the invite anyway.

No approver ever sees a card for a call refused here; the model, and through it the
reply, hears why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.agent import record_ids
from core.knowledge import ToolResult
from core.schemas import ToolCall
from core.tools import Tool, ToolArgumentsError
from guardrails.injection import unwrap_untrusted

# Runs calls as one persisted Act step; their results in the calls' order.
Act = Callable[[list[ToolCall]], list[ToolResult]]


@dataclass(frozen=True)
class ActedTurn:
    # The calls answered, each beside its result: those made, then those stopped or
    # refused without running.
    calls: list[ToolCall]
    results: list[ToolResult]
    made: list[ToolCall]  # those that ran (a read as planned, where it read the one found)
    # Held back for the reads beside them, each with what the model is told of it.
    deferred: list[tuple[ToolCall, str]]
    # The keys (`call_key`) of actions refused for an id, address or number nobody gave:
    # the model was told to search first.
    refused_for_search: list[str] = field(default_factory=list)
    # The calls refused or stopped here, exactly as planned: the same call planned again
    # would be refused again.
    refused: list[ToolCall] = field(default_factory=list)
    # Each action refused or held back here for what nobody gave, by key: the call and
    # the (argument, value) pairs nobody gave.
    unseen_actions: dict[str, tuple[ToolCall, list[tuple[str, str]]]] = field(default_factory=dict)
    # The reads made in place of reads of an id nobody gave, with the one id found.
    read_instead: list[ToolCall] = field(default_factory=list)


def call_key(call: ToolCall, reads: set[str]) -> str:
    """What makes two calls the same: a read with the same arguments reads the same thing;
    an action (anything not a read) is proposed once per tool in a run, however its
    wording varies between turns."""
    return exact_key(call) if call.name in reads else call.name


def exact_key(call: ToolCall) -> str:
    """A call with its arguments, as planned: what a refused call is remembered by."""
    return f"{call.name}:{json.dumps(call.arguments, sort_keys=True)}"


def act_turn(
    calls: list[ToolCall],
    *,
    reads: set[str],
    tools: dict[str, Tool],
    earlier: list[ToolResult],
    seen: str,
    said: str,
    held: set[str],
    another_turn_fits: Callable[[], bool],
    act: Act,
    made_before: frozenset[str] = frozenset(),
) -> ActedTurn:
    """Run the turn's ``calls`` (none made before in the run) by the rules above.
    ``earlier``: the run's results so far; ``seen``: all its ids may come from
    (`record_ids.seen_so_far`); ``said``: the message and the thread, where an id of any
    kind may come from (`record_ids.mistyped_ids`); ``held``: the keys of actions held
    back once already (added to: an action is held once, then made or refused);
    ``made_before``: the keys (`exact_key`) of the reads made in the run so far."""
    unseen = {
        id(call): record_ids.unseen_ids(call, seen, tools)
        + record_ids.mistyped_ids(call, said, earlier, tools)
        + (
            []
            if call.name in reads
            else record_ids.unseen_addresses(call, seen) + record_ids.unseen_numbers(call, seen)
        )
        for call in calls
    }
    invented = [call for call in calls if unseen[id(call)]]
    deferred: list[ToolCall] = []
    if (
        any(call.name not in reads for call in invented)
        and any(call.name in reads and not unseen[id(call)] for call in calls)
        and another_turn_fits()
    ):
        deferred = [
            call
            for call in invented
            if call.name not in reads and call_key(call, reads) not in held
        ]
        held.update(call_key(call, reads) for call in deferred)
    refused = [call for call in invented if all(call is not d for d in deferred)]
    valid = [call for call in calls if all(call is not i for i in invented)]

    judged = [call for call in valid if _may_conflict(call, tools)]
    first = [call for call in valid if all(call is not j for j in judged)]
    results = act(first) if first else []
    made = list(first)
    # A read of an id nobody gave reads the one record of its kind the results name, if
    # they name one (`record_ids.read_of_the_one_found`); made beside its call as planned.
    taken: dict[int, ToolCall] = {}
    for call in refused:
        found = (
            _as_parsed(
                record_ids.read_of_the_one_found(call, unseen[id(call)], [*earlier, *results]),
                tools,
            )
            if call.name in reads
            else None
        )
        keys = {exact_key(t) for t in taken.values()} | made_before
        if found is not None and exact_key(found) not in keys:
            taken[id(call)] = found
    if taken:
        results += act(list(taken.values()))
        made += [call for call in refused if id(call) in taken]
        refused = [call for call in refused if id(call) not in taken]
    stopped: list[ToolCall] = []
    if judged:
        outputs = [unwrap_untrusted(r.output)[1] for r in [*earlier, *results]]
        against = {id(call): _conflict(call, tools, outputs) for call in judged}
        go = [call for call in judged if against[id(call)] is None]
        results += act(go) if go else []
        made += go
        stopped = [call for call in judged if against[id(call)] is not None]
        results += [ToolResult(c.name, ok=False, output=str(against[id(c)])) for c in stopped]

    # A read of an id nobody gave (the record "<contact_id>", after or beside the search
    # that found contact 101) is told the ids the reads so far found: told only to search
    # first, the model searched again and again.
    so_far = [*earlier, *results]
    searches = sorted(name for name in reads if "search" in name)
    results += [
        ToolResult(
            call.name,
            ok=False,
            output=record_ids.not_made_yet(call, unseen[id(call)], so_far)
            if call.name in reads and record_ids.found_for(unseen[id(call)], so_far, call.arguments)
            else record_ids.made_up(
                unseen[id(call)], same_system(call.name, searches), so_far, call.arguments
            ),
            for_reply=record_ids.for_reply(unseen[id(call)]),
        )
        for call in refused
    ]
    told = [(call, record_ids.not_made_yet(call, unseen[id(call)], results)) for call in deferred]
    refused_actions = [call_key(call, reads) for call in refused if call.name not in reads]
    unseen_actions = {
        call_key(call, reads): (call, unseen[id(call)])
        for call in [*refused, *deferred]
        if call.name not in reads
    }
    return ActedTurn(
        [*made, *stopped, *refused],
        results,
        made,
        told,
        refused_actions,
        [*stopped, *refused],
        unseen_actions,
        list(taken.values()),
    )


def found_nothing(turn: ActedTurn, searches: list[str]) -> list[str]:
    """What the model is told of each search in ``turn`` that found nothing: to try
    other words or another of the run's ``searches``. Asked to email "our contact at
    Initech", the 1.5B model searched Gmail, found nothing, searched Gmail again with the
    same words, and gave up; the contact was in HubSpot."""
    told = []
    for call, result in zip(turn.calls, turn.results, strict=False):
        if (
            call.name not in searches
            or not result.ok
            or not record_ids.holds_nothing(result.output)
        ):
            continue
        others = [name for name in searches if name != call.name]
        instead = f", or search with {' or '.join(others)}" if others else ""
        told.append(
            f"{call.name} found nothing for {json.dumps(call.arguments, ensure_ascii=False)}: "
            f"try other words{instead}."
        )
    return told


def same_system(tool: str, searches: list[str]) -> list[str]:
    """The searches of the system ``tool`` belongs to (its name's first word: hubspot,
    zendesk), if any; else all. Told to find a HubSpot deal "with gmail_search_threads or
    hubspot_search_contacts", the 1.5B model searched Gmail, the first one named."""
    system = tool.split("_", 1)[0] + "_"
    own = [name for name in searches if name.startswith(system)]
    return own or searches


def _as_parsed(call: ToolCall | None, tools: dict[str, Tool]) -> ToolCall | None:
    """``call`` with its arguments as its tool reads them (the id "733" found in a result
    is the ticket 733 the model plans by number), so it is known again as the same call;
    None when they do not parse."""
    tool = tools.get(call.name) if call is not None else None
    if call is None or tool is None:
        return None
    try:
        arguments = tool.parse(call.arguments).model_dump(mode="json")
    except ToolArgumentsError:
        return None
    return call.model_copy(update={"arguments": arguments})


def _may_conflict(call: ToolCall, tools: dict[str, Tool]) -> bool:
    tool = tools.get(call.name)
    return tool is not None and tool.conflicts is not None


def _conflict(call: ToolCall, tools: dict[str, Tool], outputs: list[str]) -> str | None:
    """What the run's results say against ``call`` (Tool.conflicts), or None; arguments
    that do not parse are left to the toolbox, which says what is wrong with them."""
    tool = tools[call.name]
    assert tool.conflicts is not None
    try:
        arguments = tool.parse(call.arguments)
    except ToolArgumentsError:
        return None
    return tool.conflicts(arguments, outputs)
