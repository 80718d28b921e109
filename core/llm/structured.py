"""Asking a model for JSON that must validate against a pydantic schema.

Every LLM boundary in the loop goes through `StructuredLLM.ask`: the schema is asked for
in the way the provider takes (a JSON-schema response format where it can, see
`core.llm.formats`), the reply is parsed into the model, and a reply that does not fit is
re-asked a bounded number of times with the validation error shown to it. The caller
says what the call is for (``purpose``), which sizes the reply's token cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from core.llm.errors import MalformedOutput
from core.llm.formats import JsonSchema, json_candidates
from core.llm.providers import CallRecord, Completion, ProviderChain, TextSink, UsageSink
from core.llm.tokens import CHARS_PER_TOKEN, Count, TokenCounter
from core.llm.tools import ToolSpec, ToolTurn, check_calls, parse_json_turn

# How the agent's Plan turns offer tools (LLM_TOOL_CALLING): "native" through the chat
# API's tools / tool_calls, "json" as JSON-schema turns, "auto" native until the provider
# shows it does not take them, then JSON for that base URL and model.
ToolCalling = Literal["auto", "native", "json"]

# The request that tells whether a model calls tools through the chat API (LLM_TOOL_CALLING
# auto): a tool it cannot mistake, and a plain order to call it.
PROBE_TOOL = ToolSpec(
    name="record_number",
    description="Records a number.",
    parameters={
        "type": "object",
        "properties": {"number": {"type": "integer"}},
        "required": ["number"],
    },
)
PROBE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an assistant that uses the tools it is given."},
    {"role": "user", "content": "Record the number 7 with the record_number tool."},
]

# A reply that is asked again is shown back to the model, cut to at most this many
# characters, and to fewer when the prompt leaves less room in the context (a prompt
# fitted close to it, `bot.agent.budget`); never fewer than the minimum.
MAX_ECHO_CHARS = 2_000
MIN_ECHO_CHARS = 200
REASK_NOTE_TOKENS = 120  # the "that reply was not valid..." turn after it

# The model's context window in tokens when none is configured (LLM_CONTEXT_TOKENS): what
# small local models are usually served with.
DEFAULT_CONTEXT_TOKENS = 8_192

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


def json_schema_for(schema: type[BaseModel]) -> JsonSchema:
    return JsonSchema(name=schema.__name__, schema=schema.model_json_schema())


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON-schema response format for ``schema``, as servers that take it want it."""
    spec = json_schema_for(schema)
    return {
        "type": "json_schema",
        "json_schema": {"name": spec.name, "schema": spec.schema, "strict": True},
    }


def parse_reply(schema: type[M], content: str) -> M:
    """``content`` as ``schema``: the reply itself, or the JSON inside the prose or code
    fence a model without a response format may wrap it in. Raises the first error."""
    first, *others = json_candidates(content) or [content]
    try:
        return schema.model_validate_json(first)
    except ValidationError:
        for candidate in others:
            try:
                return schema.model_validate_json(candidate)
            except ValidationError:
                continue
        raise


@dataclass
class StructuredLLM:
    chain: ProviderChain
    malformed_retries: int
    # The model's context window: prompt and reply together (LLM_CONTEXT_TOKENS).
    context_tokens: int = field(default=DEFAULT_CONTEXT_TOKENS, kw_only=True)
    # Shared by every copy made for one request (a template's model, a budget check), so
    # what each server was found to count with is remembered for the process.
    tokens: TokenCounter = field(default_factory=TokenCounter, kw_only=True)
    tool_calling: ToolCalling = field(default="auto", kw_only=True)

    def tool_mode(self, on_call: UsageSink | None = None) -> Literal["native", "json"]:
        """How the next Plan turn offers tools: as set, or for "auto" what the primary
        provider takes. The first time in a process, "auto" asks the model once to call a
        tool it cannot mistake (`probe_native_tools`): a model that answers in prose or
        writes the call as text gets JSON-schema turns from then on, instead of Plan turns
        that silently call nothing."""
        if self.tool_calling != "auto":
            return self.tool_calling
        if not self.chain.providers:
            return "json"
        primary = self.chain.providers[0]
        if self.chain.quirks.claim_probe(primary.base_url, primary.model):
            self.probe_native_tools(on_call or (lambda record: None))
        return self.chain.quirks.get(primary.base_url, primary.model).tools

    def probe_native_tools(self, on_call: UsageSink) -> bool:
        """Whether the primary provider's model calls a tool through the chat API when
        told plainly to; if not, JSON-schema turns are remembered for it. A failed probe
        (the server down) is not remembered: the next Plan turn probes again."""
        primary = self.chain.providers[0]
        try:
            completion = self.chain.complete(
                PROBE_MESSAGES, tools=[PROBE_TOOL], purpose="tool_turn", on_call=on_call
            )
        except Exception:
            self.chain.quirks.forget_probe(primary.base_url, primary.model)
            raise
        on_call(
            CallRecord(
                provider=completion.provider,
                model=completion.model,
                outcome="ok",
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency_ms=completion.latency_ms,
            )
        )
        native = completion.native_tools and any(
            name == PROBE_TOOL.name for _id, name, _arguments in completion.tool_calls
        )
        if not native:
            self.chain.remember_json_tools(completion.provider, completion.model)
        log.info("llm.tools_probed", model=completion.model, native=native)
        return native

    def remember_json_tools(self, provider: str, model: str) -> None:
        """That provider's model answered a native tool turn in JSON text: JSON-schema
        turns for it from now on."""
        self.chain.remember_json_tools(provider, model)

    def prompt_room(self, purpose: str) -> int:
        """Tokens a prompt for ``purpose`` may take: the context less the reply's cap."""
        return self.context_tokens - self.chain.limits.tokens_for(purpose)

    def _echo(
        self,
        reply: str,
        messages: list[dict[str, Any]],
        purpose: str,
        schema: type[BaseModel] | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> str:
        """``reply`` as shown back when it is asked again: cut so the re-ask still fits."""
        if len(reply) <= MIN_ECHO_CHARS:
            return reply
        spare = (
            self.prompt_room(purpose)
            - self.count_tokens(messages, schema=schema, tools=tools).tokens
            - REASK_NOTE_TOKENS
        )
        return reply[: max(MIN_ECHO_CHARS, min(MAX_ECHO_CHARS, spare * CHARS_PER_TOKEN))]

    def count_tokens(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: type[BaseModel] | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> Count:
        """The prompt's size as the primary provider's model reads it: with its server's
        tokenizer where it has one (`core.llm.tokens`), else a safe estimate. ``schema``:
        a structured call's, counted where the provider gets it in the prompt; ``tools``:
        offered natively, which the server's chat template puts in the prompt."""
        if not self.chain.providers:
            return self.tokens.count_messages(messages)
        primary = self.chain.providers[0]
        quirks = self.chain.quirks.get(primary.base_url, primary.model)
        extra: list[str] = []
        if schema is not None and quirks.mode != "json_schema":
            extra.append(json_schema_for(schema).instruction())
        if tools:
            extra.append(json.dumps([tool.native() for tool in tools]))
        return self.tokens.count_messages(
            messages, base_url=primary.base_url, api_key=primary.client.api_key, extra=extra
        )

    def before_call(self) -> None:
        """Runs before every `ask` and `tool_turn`; a subclass may refuse the call by
        raising (guardrails/budgeted_llm.py: the tenant's budget is spent)."""

    def ask(
        self,
        schema: type[M],
        messages: list[dict[str, Any]],
        *,
        on_call: UsageSink,
        on_text: TextSink | None = None,
        purpose: str = "default",
        salvage: Callable[[str], M | None] | None = None,
    ) -> M:
        """``on_text`` (optional) hears the raw JSON so far while the reply streams in;
        ``purpose`` ("plan", "draft", "tool_turn", "summary") sizes the reply's cap;
        ``salvage`` (optional) reads what a reply cut off at that cap still says, which is
        then taken instead of asking again (e.g. `core.schemas.salvaged_draft`)."""
        self.before_call()
        conversation = list(messages)
        spec = json_schema_for(schema)
        for attempt in range(self.malformed_retries + 1):
            # The chain reports failed calls itself; a successful one is reported here, once
            # its output has been judged ok or malformed.
            completion = self.chain.complete(
                conversation, schema=spec, purpose=purpose, on_call=on_call, on_text=on_text
            )
            try:
                parsed = parse_reply(schema, completion.content)
                outcome = "ok"
            except ValidationError as exc:
                parsed = None
                outcome = "malformed"
                problem = _describe(exc)
                if completion.finish_reason == "length" and salvage is not None:
                    parsed = salvage(completion.content)
                    if parsed is not None:
                        outcome = "ok"
                        log.warning(
                            "llm.cut_off_reply_salvaged",
                            schema=schema.__name__,
                            mode=completion.mode,
                        )
            on_call(
                CallRecord(
                    provider=completion.provider,
                    model=completion.model,
                    outcome=outcome,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_ms=completion.latency_ms,
                )
            )
            if parsed is not None:
                return parsed
            log.warning(
                "llm.malformed_output",
                schema=schema.__name__,
                attempt=attempt + 1,
                mode=completion.mode,
                finish_reason=completion.finish_reason,
            )
            if completion.finish_reason == "length":
                problem = (
                    "it was cut off at the length limit before the JSON was complete; "
                    "write less, and do not repeat yourself"
                )
            conversation = [
                *messages,
                {
                    "role": "assistant",
                    "content": self._echo(completion.content, messages, purpose, schema),
                },
                {
                    "role": "user",
                    "content": (
                        f"That reply was not valid JSON for the {schema.__name__} schema "
                        f"({problem}). Reply again with only the JSON object."
                    ),
                },
            ]
        raise MalformedOutput(f"the model's replies did not fit the {schema.__name__} schema")

    def tool_turn(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        on_call: UsageSink,
        purpose: str = "tool_turn",
        check_arguments: bool = True,
    ) -> ToolTurn:
        """The model's next turn with ``tools`` on offer: text for the person, or tool
        calls whose arguments fit each tool's schema (see `core.llm.tools`); without
        ``check_arguments``, calls whose arguments are JSON objects, for a caller that
        checks them itself (the agent loop, with its own re-asks).

        ``messages`` are in the chat API's native shape (append `ToolTurn.
        assistant_message()` and `tool_result_message` for each result between turns);
        providers without native tool calling get them as plain turns.
        """
        self.before_call()
        conversation = list(messages)
        attempt = 0
        while attempt <= self.malformed_retries:
            completion = self.chain.complete(
                conversation, tools=tools, purpose=purpose, on_call=on_call
            )
            turn, problems = self._read_turn(completion, tools, check_arguments)
            on_call(
                CallRecord(
                    provider=completion.provider,
                    model=completion.model,
                    outcome="ok" if turn is not None else "malformed",
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_ms=completion.latency_ms,
                )
            )
            if turn is not None:
                return replace(
                    turn,
                    content=completion.content,
                    provider=completion.provider,
                    model=completion.model,
                )
            log.warning(
                "llm.unusable_tool_turn",
                attempt=attempt + 1,
                native=completion.native_tools,
                problems=len(problems),
            )
            if completion.native_tools and not completion.tool_calls and not problems:
                # Offered native tools, the model said nothing at all (llama-cpp-python's
                # chatml-function-calling does): the same turn again as a JSON turn,
                # which this provider gets from now on; no re-ask is used up.
                self.chain.remember_json_tools(completion.provider, completion.model)
                continue
            said = completion.content or json.dumps(
                [{"name": n, "arguments": a} for _i, n, a in completion.tool_calls]
            )
            conversation = [
                *messages,
                {"role": "assistant", "content": self._echo(said, messages, purpose, tools=tools)},
                {
                    "role": "user",
                    "content": (
                        "That reply could not be used: "
                        + "; ".join(problems)
                        + ". Reply again: call the tools with arguments that fit their "
                        "schemas, or answer."
                    ),
                },
            ]
            attempt += 1
        raise MalformedOutput("the model's tool calls did not fit the tools' schemas")

    def _read_turn(
        self, completion: Completion, tools: Sequence[ToolSpec], check_arguments: bool = True
    ) -> tuple[ToolTurn | None, list[str]]:
        """The turn, or None and what is wrong with it."""
        if completion.native_tools and completion.tool_calls:
            calls, problems = check_calls(
                [(name, arguments, call_id) for call_id, name, arguments in completion.tool_calls],
                tools,
                check_arguments=check_arguments,
            )
            if problems:
                return None, problems
            return ToolTurn(completion.content.strip(), calls, native=True), []
        parsed = parse_json_turn(completion.content, tools, check_arguments=check_arguments)
        if completion.native_tools:
            if not completion.content.strip():
                return None, []  # nothing said: the caller switches to JSON turns
            if parsed is None or not (parsed.calls or parsed.problems):
                return ToolTurn(completion.content.strip(), [], native=True), []
            # Offered native tools, the model wrote its call as text (a fenced JSON
            # block): take it, and give this model JSON turns from now on.
            self.chain.remember_json_tools(completion.provider, completion.model)
        if parsed is None:
            return None, ["the reply was not the JSON object asked for"]
        if parsed.problems:
            return None, parsed.problems
        if not parsed.calls and not parsed.text.strip():
            return None, ["it had neither an answer in reply nor a tool call"]
        return ToolTurn(parsed.text.strip(), parsed.calls, native=False), []


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return f"{first['msg']} at {where}"
