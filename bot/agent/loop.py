"""The agent loop: Plan, Retrieve, Act (and Plan and Act again while the model reads with
tools and wants to use what it read), then Draft and Verify until the draft passes.

Verify checks the draft's form, then grounds it (rag/attribution.py): each sentence is
attributed to the sources that support it, its [n] markers are added or repaired from
that, and sentences nothing supports are dropped (or flagged). A draft with no supported
fact left ends in "I couldn't find this in the knowledge base" instead of a guess.

The Plan turn offers the tools as JSON-schema turns or through the chat API's native
tool calling (`bot.agent.native_tools`, LLM_TOOL_CALLING); either way it yields the same
`Plan`, and every prompt is fitted into the model's context (`bot.agent.budget`).

It returns the text to post; posting is the caller's job (see `bot.agent.run_request`).
Every step goes through a `StepLog`, which persists it and enforces the step limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from bot.agent import budget, fill_ins, native_tools, prompts, record_ids
from bot.agent.draft_preview import DraftPreview
from bot.agent.promises import promised_action
from bot.agent.prompts import Message
from bot.agent.steps import Output, StepLimitReached, StepLog
from bot.agent.turn_calls import act_turn, call_key, exact_key, found_nothing
from core.knowledge import Passage, Retriever, Toolbox, ToolResult
from core.llm.errors import LLMRequestRejected, LLMUnavailable, MalformedOutput
from core.llm.providers import UsageSink
from core.llm.structured import StructuredLLM
from core.schemas import Draft, Plan, ToolCall, draft_for, plan_for, salvaged_draft
from core.tools import Effect, Tool, ToolArgumentsError
from guardrails.budgets import BudgetExceeded
from rag.attribution import (
    ECHO_REASON,
    INSTRUCTIONS_REASON,
    INTERNAL_NAME_REASON,
    NOT_DONE_REASON,
    Grounding,
    attribute,
)
from rag.citations import NOT_FOUND_ANSWER, evidence, format_sources, is_not_found
from rag.deciding_line import deciding_line

PASSAGES_PER_SEARCH = 8
MAX_ANSWER_CHARS = 3_000
# Drafts with no supported fact before the agent stops trying and says it could not find
# the answer: a model that cannot ground its answer in two tries is guessing, and a guess
# with a source list looks more trustworthy than it is.
MAX_UNGROUNDED_DRAFTS = 2
# Times a plan whose tool arguments do not validate is sent back with the problems.
ARGUMENT_RETRIES = 2
# Passages one draft may be given, over all the searches of a run.
MAX_PASSAGES = 12
# The tool loop: another Plan turn (plan, act) is taken only if the run still has room for
# it and for drafting (a draft and its verify), and while the Plan prompt stays this small
# (estimated tokens; small local models have 4-8k contexts, and the draft needs room too).
PLAN_TURN_STEPS = 2
DRAFT_STEPS = 2
MAX_PLAN_PROMPT_TOKENS = 6_000
# Unsupported sentences quoted back to the model when it is asked again.
MAX_QUOTED_SENTENCES = 3
# The reply when a run's actions wait for approval and its draft said nothing true of them
# (only that they were done): the thread lists each action under it.
WAITING_ANSWER = "Nothing is done yet: what you asked for is waiting for approval."

log = structlog.get_logger(__name__)

OFFLINE_LABEL = (
    "_Offline mode: no language model is configured, so I can only show what I found: I "
    "cannot write an answer or act on a request (send an email, post elsewhere). Whoever runs "
    "me can set OPENAI_BASE_URL to an OpenAI-compatible model (the sandbox uses its demo "
    "model unless started with --offline); `/agent status` shows the model in use._"
)


@dataclass(frozen=True)
class Outcome:
    text: str
    status: Literal["answered", "failed"]
    reason: str | None = None


@dataclass(frozen=True)
class AgentInput:
    tenant_id: int
    question: str
    history: list[prompts.Turn]
    # Reviewers' earlier corrections of similar drafts, shown to the model as examples.
    corrections: list[prompts.Example] = field(default_factory=list)
    # The agent template's prompt, added to the system prompts; None: no template.
    instructions: str | None = None


def run_agent(
    request: AgentInput,
    *,
    llm: StructuredLLM | None,
    retriever: Retriever,
    tools: Toolbox,
    steps: StepLog,
    on_call: UsageSink,
    preview: DraftPreview | None = None,
    grounding: Grounding | None = None,
) -> Outcome:
    """``preview``, if given, is shown each draft's answer while the model writes it.
    ``grounding`` says how Verify attributes sentences (the embedder; by default word
    overlap alone) and whether unsupported ones are dropped or flagged."""
    if llm is None:
        return _offline_answer(request, retriever, steps)
    try:
        return _answer(
            request, llm, retriever, tools, steps, on_call, preview, grounding or Grounding()
        )
    except LLMRequestRejected:
        return couldnt_complete("the language model refused the request")
    except LLMUnavailable:
        return couldnt_complete("the language model service is not responding")
    except MalformedOutput:
        return couldnt_complete("the language model kept giving answers I could not use")
    except StepLimitReached:
        return couldnt_complete("I could not produce an answer that passed my checks")
    except BudgetExceeded as exc:
        return Outcome(text=exc.notice, status="failed", reason="budget")


def couldnt_complete(reason: str) -> Outcome:
    return Outcome(
        text=(
            f":warning: Sorry, I couldn't complete this request: {reason}. "
            "Please try again in a few minutes; if it keeps happening, tell your admin."
        ),
        status="failed",
        reason=reason,
    )


def _answer(
    request: AgentInput,
    llm: StructuredLLM,
    retriever: Retriever,
    tools: Toolbox,
    steps: StepLog,
    on_call: UsageSink,
    preview: DraftPreview | None,
    grounding: Grounding,
) -> Outcome:
    history, question = request.history, request.question
    # Asked once per run: a production toolbox reads the tenant's connectors from Postgres.
    offered = tools.offered()
    turns = _plan_and_act(request, llm, retriever, tools, offered, steps, on_call)
    plan, passages, tool_results = turns.plan, turns.passages, turns.tool_results
    acts = any(tool.effect is not Effect.READ_ONLY for tool in offered)
    resumed = False

    def write_draft(problems: list[str], rejected: str | None) -> Output:
        def build(turns: list[prompts.Turn], shown: list[Passage], cap: int) -> list[Message]:
            return prompts.draft_messages(
                turns,
                question,
                plan,
                shown,
                tool_results,
                problems,
                request.corrections,
                request.instructions,
                rejected=rejected,
                max_output_chars=cap,
            )

        fitted = budget.fit(
            build,
            history,
            passages,
            room=llm.prompt_room("draft"),
            count=partial(llm.count_tokens, schema=Draft),
        )
        shown = passages[: fitted.passages]
        on_text = preview.for_sources(shown) if preview is not None else None
        draft = llm.ask(
            draft_for(fitted.passages),
            fitted.messages,
            on_call=on_call,
            on_text=on_text,
            purpose="draft",
            salvage=salvaged_draft,
        )
        return {
            **draft.model_dump(),
            **fitted.step_fields(),
            "passages_shown": fitted.passages,
        }

    problems: list[str] = []
    rejected: str | None = None
    ungrounded = 0
    tool_names = [tool.name for tool in offered]
    while True:
        output = steps.step("draft", partial(write_draft, problems, rejected))
        draft = Draft.model_validate(_fields(Draft, output))
        # The passages this draft was shown, numbered as it saw them: those left out to fit
        # the context were the lowest-ranked, so the numbers of the rest are unchanged.
        shown = passages[: output.get("passages_shown", len(passages))]
        rejected = draft.model_dump_json()
        verdict = steps.step(
            "verify",
            partial(_verdict, draft, shown, tool_results, request, grounding, tool_names),
        )
        problems = verdict["problems"]
        if not problems:
            if verdict.get("not_found"):
                return Outcome(
                    text=not_found_reply(tool_results), status="answered", reason="not_found"
                )
            # A Verify step persisted before grounding existed holds only the problems.
            grounded = Draft(
                answer=verdict.get("answer", draft.answer),
                citations=verdict.get("citations", draft.citations),
            )
            promise = promised_action(grounded.answer) if acts and not resumed else None
            if (
                promise is not None
                and not any(r.awaits_approval for r in tool_results)
                and steps.has_room(PLAN_TURN_STEPS + DRAFT_STEPS + 1)
            ):
                # The draft says what the agent "will" do, and no call does it: asked to
                # find a ticket and ask the customer for a photo, the 1.5B model read the
                # ticket and replied "I will ask the customer for a photo of the fault."
                # Told its own words, it proposed the comment 3 times in 3 replays. Once
                # per run; the draft is then written again from the new results.
                resumed = True
                note = prompts.promised_note(promise)
                turns = _plan_and_act(
                    request,
                    llm,
                    retriever,
                    tools,
                    offered,
                    steps,
                    on_call,
                    resume=replace(turns, note=note),
                )
                plan, passages, tool_results = turns.plan, turns.passages, turns.tool_results
                problems, rejected, ungrounded = [], None, 0
                continue
            return Outcome(text=format_answer(grounded, shown), status="answered")
        if verdict.get("citations_failed"):
            ungrounded += 1
            if ungrounded >= MAX_UNGROUNDED_DRAFTS:
                return Outcome(
                    text=not_found_reply(tool_results), status="answered", reason="ungrounded"
                )


def _plan_and_act(
    request: AgentInput,
    llm: StructuredLLM,
    retriever: Retriever,
    tools: Toolbox,
    offered: list[Tool],
    steps: StepLog,
    on_call: UsageSink,
    resume: _ToolTurns | None = None,
) -> _ToolTurns:
    """Plan, Retrieve, Act, and again while the model calls read tools: each further Plan
    turn sees the results of the calls before it, so it can use what a read returned (a
    contact's id, a free slot) in its next call. Bounded by the run's steps (leaving room
    to draft) and by MAX_PLAN_PROMPT_TOKENS. The last plan's intent leads to the Draft, but
    only the first may decline.
    ``offered``: the toolbox's tools for this run, as it offered them. ``resume``: the
    turns of this run so far, the last one's ``note`` telling the model why it is asked
    for another plan; they go on from there instead of from a first plan."""
    reads = {tool.name for tool in offered if tool.effect is Effect.READ_ONLY}
    searches = sorted(name for name in reads if "search" in name)
    by_name = {tool.name: tool for tool in offered}
    # Each earlier turn of this run: its plan, the calls made and what they returned; the
    # next Plan prompt shows them all after the question.
    exchanges: list[_Exchange] = list(resume.exchanges) if resume else []

    def plan_prompt(how: native_tools.How) -> budget.Build:
        def build(turns: list[prompts.Turn], _passages: list[Passage], cap: int) -> list[Message]:
            if how == "native":
                messages = prompts.native_plan_messages(
                    turns, request.question, request.corrections, request.instructions
                )
                for number, done in enumerate(exchanges):
                    messages += native_tools.follow_up(
                        done.plan,
                        number,
                        offered,
                        made=done.made,
                        deferred=done.deferred,
                        results=done.results,
                        passages=done.passages,
                        max_output_chars=cap,
                    )
                return messages
            messages = prompts.plan_messages(
                turns, request.question, offered, request.corrections, request.instructions
            )
            for number, done in enumerate(exchanges, start=1):
                messages += prompts.plan_follow_up(
                    done.plan,
                    done.results,
                    note=done.note,
                    max_output_chars=cap,
                    # recalled in the latest turn only: the earlier ones are history
                    question=request.question if number == len(exchanges) else "",
                )
            return messages

        return build

    def why_no_turn(steps_needed: int = 0, extra_chars: int = 0) -> str | None:
        """Why no further Plan turn may be taken (None: one may), ``steps_needed`` and
        ``extra_chars`` of prompt from now. Estimated by characters, so a retried job
        decides the same as the first did."""
        if not steps.has_room(steps_needed + PLAN_TURN_STEPS + DRAFT_STEPS):
            return "steps"
        whole = plan_prompt("json")(request.history, [], prompts.MAX_TOOL_OUTPUT_CHARS)
        size = prompts.estimated_tokens(whole) + math.ceil(extra_chars / 4)
        if size > min(MAX_PLAN_PROMPT_TOKENS, llm.prompt_room("tool_turn")):
            return "prompt size"
        return None

    def next_turn_fits(extra_chars: int) -> bool:
        return why_no_turn(steps_needed=1, extra_chars=extra_chars) is None

    passages: list[Passage]  # found so far, what the Draft is given
    searched: list[str]  # the knowledge-base queries made

    def next_plan() -> Plan:
        """The next tool turn's plan, and passages for the knowledge-base queries in it
        that were not searched before."""
        nonlocal passages
        plan = _plan(
            steps, llm, request, plan_prompt, offered, on_call, "tool_turn", turn=len(exchanges)
        )
        new_queries = [q for q in plan.search_queries if q not in searched]
        if new_queries:
            searched.extend(new_queries)
            passages = _retrieve(request, new_queries, retriever, steps, passages)
        return plan

    if resume is None:
        plan = _plan(steps, llm, request, plan_prompt, offered, on_call, "plan", turn=0)
        first_intent = plan.intent
        searched = list(plan.search_queries or [request.question])
        passages = _retrieve(request, searched, retriever, steps)
        tool_results: list[ToolResult] = []
        calls_made = 0
    else:
        exchanges.append(_Exchange(resume.plan, [], [], resume.note, resume.passages))
        first_intent, searched = resume.first_intent, list(resume.searched)
        passages, tool_results = resume.passages, list(resume.tool_results)
        calls_made = resume.calls_made
        plan = next_plan()

    def act_calls(calls: list[ToolCall]) -> list[ToolResult]:
        nonlocal calls_made
        results = _act(steps, tools, calls, first_index=calls_made)
        calls_made += len(calls)
        return results

    made: set[str] = set(resume.made) if resume else set()
    held: set[str] = set()  # actions held back once already, made when asked for again
    refused: set[str] = set()  # actions refused for an unseen id, given a turn to search
    # every call refused, with its arguments (exact_key)
    refused_calls: set[str] = set(resume.refused_calls) if resume else set()
    # Actions refused or held for what nobody gave, not proposed since: each later turn
    # reminds the model of them with what the results now name.
    unmade: dict[str, tuple[ToolCall, list[tuple[str, str]]]] = {}
    repeats_told = False
    said = record_ids.seen_so_far(request.question, request.history, [])
    while plan.tool_calls:
        # A search for a record the person named by id ("ticket:977") reads that record,
        # as does a search of its system in other words while no call the model planned
        # names it; the same call twice in one plan (that read, and the read planned
        # beside it) is made once.
        named_unread = record_ids.unread_in(
            request.question,
            [*(c for done in exchanges for c in done.plan.tool_calls), *plan.tool_calls],
        )
        unique: dict[str, ToolCall] = {}
        for call in plan.tool_calls:
            read = record_ids.read_of_the_id_given(call, said, by_name, reads, named_unread)
            call = read or call
            unique.setdefault(exact_key(call), call)
        planned = list(unique.values())
        # A small model that keeps a read in every turn also repeats the rest of its plan:
        # a call made before in this run is not made again, so an action is proposed once.
        # Nor is a call refused before, planned again as it was: refused again, turn after
        # turn, it kept a run going until its steps ran out (the read of "<contact_id>").
        fresh = [
            call
            for call in planned
            if call_key(call, reads) not in made and exact_key(call) not in refused_calls
        ]
        if not fresh:
            # Told that a deal's id was a contact's and to read the contact, the 1.5B model
            # searched the contacts again, and the run ended there. Once per run, a plan of
            # nothing but repeats is told so, with what it was told last, and planned again.
            if repeats_told or why_no_turn() is not None:
                log.info("agent.tool_turns_stopped", reason="only calls already made")
                break
            repeats_told = True
            unread = record_ids.not_read_yet(
                tool_results, [c for done in exchanges for c in done.made], by_name, reads
            )
            note = _only_repeats(exchanges, unmade, tool_results, unread)
            exchanges.append(_Exchange(plan, [], [], note, passages))
            plan = _plan(
                steps, llm, request, plan_prompt, offered, on_call, "tool_turn", turn=len(exchanges)
            )
            continue
        # The next turn's prompt at most: this plan, each result at its cap, and a note.
        at_most = len(plan.model_dump_json()) + len(fresh) * (prompts.MAX_TOOL_OUTPUT_CHARS + 200)
        turn = act_turn(
            fresh,
            reads=reads,
            tools=by_name,
            earlier=tool_results,
            seen=record_ids.seen_so_far(request.question, request.history, tool_results, passages),
            said=said,
            held=held,
            another_turn_fits=partial(next_turn_fits, at_most + 400),
            act=act_calls,
            made_before=frozenset(made),
        )
        made.update(call_key(call, reads) for call in [*turn.made, *turn.read_instead])
        refused_calls.update(exact_key(call) for call in turn.refused)
        tool_results += turn.results
        # An action refused for an id nobody gave was told to search first: the model
        # gets a turn to do so, once per action (planned alone, a move of deal 1234567890
        # was refused and the run went straight to a draft that said the deal had moved).
        searching = [key for key in turn.refused_for_search if key not in refused]
        refused.update(searching)
        if not any(call.name in reads for call in turn.calls) and not searching:
            break  # nothing read that the model has not seen: on to the draft
        repeated = len(planned) - len(turn.calls) - len(turn.deferred)
        note = (
            f"\n{repeated} of these calls repeated earlier ones and were not made again; "
            "do not call them again."
            if repeated
            else ""
        )
        note += "".join(f"\n{text}" for _, text in turn.deferred)
        note += "".join(f"\n{text}" for text in found_nothing(turn, searches))
        # Searched and read after its email to a made-up address was refused, the 1.5B
        # model never came back to the email: told what the results now name, it may.
        for key in made:
            unmade.pop(key, None)
        note += "".join(
            f"\n{reminder}"
            for key, (call, unseen) in unmade.items()
            if key not in turn.unseen_actions
            and (reminder := record_ids.still_to_do(call, unseen, tool_results))
        )
        unmade.update(turn.unseen_actions)
        exchanges.append(_Exchange(plan, turn.calls, turn.results, note, passages, turn.deferred))
        stop = why_no_turn()
        if stop is not None:
            log.info("agent.tool_turns_stopped", reason=stop)
            break
        plan = next_plan()
    if plan.intent == "decline" and first_intent != "decline":
        # Whether to decline is decided on the message, at the first plan. After searches
        # that found nothing and a plan of repeats, the 1.5B model ended a policy question
        # ("How much discount can I give ... 150 seats?") with intent "decline", and the
        # Draft, shown the rule in the sources, answered "I cannot give a discount".
        plan = plan.model_copy(update={"intent": first_intent})
    return _ToolTurns(
        plan=plan,
        passages=passages,
        tool_results=tool_results,
        exchanges=tuple(exchanges),
        first_intent=first_intent,
        searched=tuple(searched),
        calls_made=calls_made,
        made=frozenset(made),
        refused_calls=frozenset(refused_calls),
    )


@dataclass(frozen=True)
class _ToolTurns:
    """Where a run's tool turns ended: the last plan (its intent leads the Draft), the
    passages and tool results the Draft is given, and what another turn goes on from."""

    plan: Plan
    passages: list[Passage]
    tool_results: list[ToolResult]
    exchanges: tuple[_Exchange, ...]
    first_intent: Literal["answer", "clarify", "decline"]
    searched: tuple[str, ...]
    calls_made: int  # tool calls' indexes run on, so each keeps its idempotency key
    made: frozenset[str]  # call_key of every call made: none is made twice in a run
    refused_calls: frozenset[str]
    note: str = ""  # why the model is asked for another plan, after the last results


def _only_repeats(
    exchanges: list[_Exchange],
    unmade: dict[str, tuple[ToolCall, list[tuple[str, str]]]],
    results: list[ToolResult],
    unread: Sequence[str] = (),
) -> str:
    """What a plan made only of calls already made (or refused) in the run is told: that
    none was made again, what the turn before it was told of the calls it could not make,
    the actions still to do with what the results now name, and the records they name
    that no call has read (``unread``, `record_ids.not_read_yet`)."""
    last = exchanges[-1]  # a first plan is never all repeats: nothing was made before it
    refusals = [r.output for r in last.results if not r.ok]
    refusals += [text for _, text in last.deferred]
    reminders = [
        reminder
        for call, unseen in unmade.values()
        if (reminder := record_ids.still_to_do(call, unseen, results))
    ]
    not_read = (
        [f"The results name records you have not read: {', '.join(unread)}."] if unread else []
    )
    return "".join(
        f"\n{line}"
        for line in [
            "Every call in your last plan was made before in this run, so none was made "
            "again: their results are above. Do not plan them again; take the next step "
            "from those results.",
            *dict.fromkeys([*refusals, *reminders]),
            *not_read,
        ]
    )


@dataclass(frozen=True)
class _Exchange:
    """One Plan turn's part in the turns after it."""

    plan: Plan
    made: list[ToolCall]  # its calls that were made (not repeats of earlier ones)
    results: list[ToolResult]  # theirs, in the same order
    note: str  # told after the results (JSON turns): that repeated calls were not made
    passages: list[Passage]  # found so far, what its searches are answered with
    # its actions held back until the model has seen the results of its reads, each with
    # what it is told about it
    deferred: list[tuple[ToolCall, str]] = field(default_factory=list)


def _plan(
    steps: StepLog,
    llm: StructuredLLM,
    request: AgentInput,
    build_for: Callable[[native_tools.How], budget.Build],
    offered: list[Tool],
    on_call: UsageSink,
    purpose: str,
    *,
    turn: int,
) -> Plan:
    """``purpose`` sizes the reply's token cap: "plan" for the first turn, "tool_turn"
    for those that follow tool results (LLM_MAX_TOKENS_PLAN / _TOOL_TURN). The tools are
    offered natively or in a JSON-schema turn (`StructuredLLM.tool_mode`), and the prompt
    is fitted into the context with the thread's history (`bot.agent.budget`)."""

    def plan_turn() -> Output:
        how = llm.tool_mode(on_call)
        schema = plan_for(offered)
        specs = native_tools.specs(offered) if how == "native" else []
        fitted = budget.fit(
            build_for(how),
            request.history,
            [],
            room=llm.prompt_room(purpose),
            count=partial(llm.count_tokens, schema=None if specs else schema, tools=specs),
        )
        if how == "native":
            output = _native_plan_turn(llm, fitted.messages, offered, on_call, purpose, turn)
        else:
            output = {
                **_plan_turn(llm, fitted.messages, offered, on_call, purpose),
                "tool_calling": "json",
            }
        return {**output, **fitted.step_fields()}

    output = steps.step("plan", plan_turn)
    return Plan.model_validate(_fields(Plan, output))


def _act(
    steps: StepLog, tools: Toolbox, calls: list[ToolCall], *, first_index: int
) -> list[ToolResult]:
    """Run one plan's calls as one persisted step: a retried job replays the results
    instead of calling the tools again. Indexes run on across turns, so each call's
    idempotency key (run, index) stays its own."""

    def act() -> Output:
        results = []
        for index, call in enumerate(calls, start=first_index):
            with steps.tool_call(call.name):
                results.append(asdict(tools.run(call, index)))
        return {"results": results}

    output = steps.step("act", act)
    return [ToolResult(**r) for r in output["results"]]


def _fields(model: type[BaseModel], output: Output) -> Output:
    """A step's output without what the step adds beside the model (its prompt size)."""
    return {key: value for key, value in output.items() if key in model.model_fields}


def _plan_turn(
    llm: StructuredLLM,
    messages: list[dict[str, Any]],
    offered: list[Tool],
    on_call: UsageSink,
    purpose: str = "plan",
) -> Output:
    """One Plan from the model, its tool calls' arguments checked against their tools: a
    plan with invalid arguments is sent back with the problems, up to
    ARGUMENT_RETRIES times; calls still invalid then are refused when they run (the
    draft sees why) instead of failing the whole run."""
    schema = plan_for(offered)
    by_name = {tool.name: tool for tool in offered}
    conversation = list(messages)
    for attempt in range(ARGUMENT_RETRIES + 1):
        plan = _unsigned(llm.ask(schema, conversation, on_call=on_call, purpose=purpose), by_name)
        problems = _call_problems(plan, by_name)
        if not problems:
            break
        log.info("plan.invalid_arguments", attempt=attempt + 1, problems=len(problems))
        conversation = [*messages, *_rejected_plan(plan, problems)]
    return plan.model_dump(mode="json")


def _native_plan_turn(
    llm: StructuredLLM,
    messages: list[dict[str, Any]],
    offered: list[Tool],
    on_call: UsageSink,
    purpose: str,
    turn: int,
) -> Output:
    """One Plan through native tool calling (`bot.agent.native_tools`), its calls'
    arguments checked as in a JSON turn and sent back the native way (a tool result
    saying what was wrong) up to ARGUMENT_RETRIES times. A model that answers with a
    JSON plan or call in its text instead is taken at its word; with LLM_TOOL_CALLING
    "auto", that base URL and model get JSON-schema turns from then on."""
    schema = plan_for(offered)
    specs = native_tools.specs(offered)
    by_name = {tool.name: tool for tool in offered}
    conversation = list(messages)
    for attempt in range(ARGUMENT_RETRIES + 1):
        # Arguments are checked here, against the tools themselves, as in a JSON turn.
        answered = llm.tool_turn(
            conversation, specs, on_call=on_call, purpose=purpose, check_arguments=False
        )
        planned = native_tools.plan_of(answered, schema, offered)
        if planned.how == "json" and llm.tool_calling == "auto":
            llm.remember_json_tools(answered.provider, answered.model)
        plan = _unsigned(planned.plan, by_name)
        problems = _call_problems(plan, by_name)
        if not problems:
            break
        log.info("plan.invalid_arguments", attempt=attempt + 1, problems=len(problems))
        if planned.how == "native":
            conversation = [*messages, *native_tools.rejected_calls(plan, problems, turn, offered)]
        else:
            conversation = [*messages, *_rejected_plan(plan, problems)]
    return {**plan.model_dump(mode="json"), "tool_calling": planned.how}


def _rejected_plan(plan: Plan, problems: dict[int, str]) -> list[dict[str, Any]]:
    """A JSON plan with calls whose arguments their tools reject, and what to correct."""
    listed = "; ".join(f"call {index + 1} ({problem})" for index, problem in problems.items())
    return [
        {"role": "assistant", "content": plan.model_dump_json()},
        {
            "role": "user",
            "content": "Some tool calls had arguments their tool does not accept: "
            + listed
            + ". Reply again with the whole plan, with those arguments corrected.",
        },
    ]


def _unsigned(plan: Plan, tools: dict[str, Tool]) -> Plan:
    """``plan`` with blank signature lines taken off its actions' texts (`fill_ins`)."""
    calls = [
        call
        if call.name not in tools or tools[call.name].effect is Effect.READ_ONLY
        else fill_ins.without_signature_blank(call)
        for call in plan.tool_calls
    ]
    if calls == plan.tool_calls:
        return plan
    return plan.model_copy(update={"tool_calls": calls})


def _call_problems(plan: Plan, tools: dict[str, Tool]) -> dict[int, str]:
    """By call (from 0): why an offered tool rejects its arguments, or why an action's
    text cannot be sent as it is (`bot.agent.fill_ins`); calls to tools not offered are
    refused when they run, not asked again."""
    problems = {}
    for index, call in enumerate(plan.tool_calls):
        tool = tools.get(call.name)
        if tool is None or record_ids.placeholder_ids(call):
            # A record id written as a placeholder ("<contact_id>") is for a result the
            # model has not seen yet: asked again, it wrote the same; the loop tells it
            # the ids its reads find (record_ids) instead.
            continue
        try:
            tool.parse(call.arguments)
        except ToolArgumentsError as exc:
            problems[index] = str(exc)
            continue
        blanks = fill_ins.blanks(call) if tool.effect is not Effect.READ_ONLY else []
        if blanks:
            problems[index] = fill_ins.problem(blanks)
    return problems


def _retrieve(
    request: AgentInput,
    queries: list[str],
    retriever: Retriever,
    steps: StepLog,
    found: list[Passage] | None = None,
) -> list[Passage]:
    """The passages ``found`` so far, then new ones for ``queries``, as one step whose
    output is every passage the draft will be given, in the order it numbers them (the
    answer's Sources read the last retrieve step: bot/agent/answer_blocks.py)."""
    earlier = found or []

    def search() -> Output:
        seen = {p.id for p in earlier}
        new = [
            p
            for p in retriever.search(request.tenant_id, queries, limit=PASSAGES_PER_SEARCH)
            if p.id not in seen
        ]
        return {"passages": [asdict(p) for p in [*earlier, *new][:MAX_PASSAGES]]}

    output = steps.step("retrieve", search)
    return [Passage(**p) for p in output["passages"]]


def _verdict(
    draft: Draft,
    passages: list[Passage],
    tool_results: list[ToolResult] | None = None,
    request: AgentInput | None = None,
    grounding: Grounding | None = None,
    tool_names: Sequence[str] = (),
) -> Output:
    """The draft checked and grounded. Persisted as the Verify step, so a retried job
    posts the same answer: ``answer`` and ``citations`` as grounded, ``not_found`` when
    the reply is "I couldn't find this", ``unsupported`` the sentences taken out (or
    flagged) and why; ``problems`` (with ``citations_failed`` for grounding) when the
    model must write the draft again.

    Facts may come from the passages (cited by number), the tool results and the earlier
    turns of the conversation (not cited). Without passages the reply is not an answer from
    the knowledge base, and only sentences claiming a source must be supported."""
    form = verify(draft)
    if form:
        return {"problems": form, "citations_failed": False}
    grounding = grounding or Grounding()
    outputs = [r.output for r in tool_results or []]  # a refusal is information too
    awaiting = any(r.awaits_approval for r in tool_results or [])
    # An action waiting for approval, or refused (`for_reply`: it was not made, and the
    # Draft was told why), has not happened: a sentence saying it has is false. With every
    # call refused, the 1.5B model still wrote "moved their renewal deal to closed won".
    not_done = awaiting or any(not r.ok and r.for_reply for r in tool_results or [])
    earlier = [turn["content"] for turn in request.history] if request else []
    sources = evidence(passages, [*outputs, *earlier])
    result = attribute(
        draft.answer,
        sources,
        question=request.question if request else "",
        # Without passages the embedder (loaded on first use) is not worth loading.
        embedder=grounding.embedder if passages else None,
        unsupported=grounding.unsupported,
        strict=bool(passages),
        acted=bool(tool_results),
        awaiting=not_done,
        internal_names=tool_names,
        instructions=(request.instructions or "") if request else "",
    )
    unsupported = [{"sentence": s.text, "why": s.reason} for s in result.unsupported]
    verdict: Output = {
        "problems": [],
        "citations_failed": False,
        "answer": result.answer,
        "citations": [str(n) for n in result.cited],
        "unsupported": unsupported,
        "not_found": False,
    }
    empty = not result.answer.strip()  # e.g. a runaway "[1][2][3]..." with no words
    # Sentences taken out for how they speak of the run, not for facts they invent.
    invented = [
        s
        for s in result.unsupported
        if s.reason not in (NOT_DONE_REASON, INTERNAL_NAME_REASON, ECHO_REASON, INSTRUCTIONS_REASON)
    ]
    if (
        awaiting
        and not invented
        and (result.answers_nothing or empty or is_not_found(result.answer))
    ):
        # Nothing left but claims that the waiting actions were done: the run's point was
        # its actions, so say where they stand, not "not found", and spend no further
        # model call on it (the thread also lists each action). A draft that invented
        # other facts is asked again, as any.
        return verdict | {"answer": WAITING_ANSWER, "citations": []}
    if result.answers_nothing or empty or is_not_found(result.answer):
        if (result.facts or empty) and (passages or outputs) and not result.says_not_found:
            # Nothing the sources support, while sources exist: ask once more.
            quoted = "; ".join(
                f'"{s["sentence"]}" ({s["why"]})' for s in unsupported[:MAX_QUOTED_SENTENCES]
            )
            verdict["problems"] = [
                "nothing in it is supported by the numbered sources"
                + (f": {quoted}" if quoted else "")
                + ". Answer only with facts from the sources, each followed by its number "
                "in square brackets, or say you could not find it in the knowledge base"
            ]
            verdict["citations_failed"] = True
        verdict |= {"answer": NOT_FOUND_ANSWER, "citations": [], "not_found": True}
    else:
        # A yes or no that states something a source supports is given the source line it
        # rests on (`rag.deciding_line`); a bare "No" states nothing, and a quote beneath
        # it would make it look answered ("Can customers pay for a repair in instalments?").
        rule = (
            deciding_line(result.answer, result.cited, sources, request.question)
            if passages and request and any(s.supported for s in result.facts)
            else None
        )
        if rule is not None:
            verdict["answer"] = f"{result.answer.rstrip()}\n\n> {rule.text} [{rule.number}]"
            verdict["citations"] = [str(n) for n in sorted({*result.cited, rule.number})]
        if awaiting and "approv" not in result.answer.lower():
            # The requester must read in the reply that nothing has happened yet: the
            # 1.5B model wrote what it had prepared and left that out.
            verdict["answer"] = f"{verdict['answer'].rstrip()}\n\n{WAITING_ANSWER}"
    return verdict


def not_found_reply(tool_results: list[ToolResult]) -> str:
    """ "I couldn't find this", saying where else the run looked (asked to read an email,
    a person was told only that the knowledge base had nothing, after the agent had
    searched the mailbox for it) and what it did not do for want of what nobody gave."""
    looked = list(dict.fromkeys(r.looked_up for r in tool_results if r.looked_up))
    # ...and what it did not do for want of an address or record (asked to email "our
    # contact at Initech", a person was told only that the knowledge base had nothing).
    not_done = " ".join(dict.fromkeys(r.for_reply for r in tool_results if r.for_reply))
    if not looked:
        # Asked to move a deal or send an email, the person is told what was not done and
        # why; "I couldn't find this in the knowledge base" before it answered nothing
        # they had asked.
        return not_done or NOT_FOUND_ANSWER
    where = "; ".join(summary[:1].lower() + summary[1:] for summary in looked)
    return f"{NOT_FOUND_ANSWER.rstrip('.')}, nor in what I looked up: {where}. {not_done}".strip()


def verify(draft: Draft) -> list[str]:
    """What is wrong with a draft's form, in words the model can act on; its grounding
    is `rag.attribution.attribute`'s."""
    problems = []
    if not draft.answer.strip():
        problems.append("the answer is empty")
    if len(draft.answer) > MAX_ANSWER_CHARS:
        problems.append(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    return problems


def format_answer(draft: Draft, passages: list[Passage]) -> str:
    """The answer as posted: the text, then the numbered sources it cited."""
    return format_sources(draft.answer, draft.citations, passages)


def _offline_answer(request: AgentInput, retriever: Retriever, steps: StepLog) -> Outcome:
    passages = _retrieve(request, [request.question], retriever, steps)
    if not passages:
        body = "I found nothing in the knowledge base about this."
    else:
        body = "Here is what I found:\n" + "\n".join(
            f"• *{p.title}*: {p.text[:300]}" for p in passages[:3]
        )
    return Outcome(text=f"{OFFLINE_LABEL}\n{body}", status="answered")
