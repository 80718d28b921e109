"""Calling OpenAI-compatible endpoints in order, with retries, timeouts and fallback.

Each provider is the official `openai` client aimed at one base URL. Transient failures
(timeouts, connection errors, 429, 5xx) are retried with backoff on the same provider;
anything else, or running out of retries, moves on to the next provider. A provider that
keeps failing has its circuit opened and is skipped until it cools down.

Every request carries a token cap for its purpose and a low temperature
(`core.llm.limits`), and is streamed, so the timeout is the longest silence between two
pieces of the reply, never the length of the whole reply. A server that refuses part of
a request (the JSON response format, ``max_tokens``...) is asked again without it at once
(`core.llm.formats`), and what it takes is remembered. A request refused as a whole (400,
422, 401, 404...) is not retried; if no provider answers, that is `LLMRequestRejected`.
Failures are logged with their status and a shortened body, never the key or the prompt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import openai
import structlog
from openai.types import CompletionUsage
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

from core.correlation import correlation_headers
from core.llm.circuit import CircuitBreaker
from core.llm.errors import LLMRequestRejected, LLMUnavailable
from core.llm.formats import (
    JsonSchema,
    Mode,
    QuirkMemory,
    Quirks,
    adapt,
    status_of,
    with_system_note,
)
from core.llm.limits import RequestLimits, capped_by_deadline, http_timeout, timeout_seconds
from core.llm.redaction import loggable_body
from core.llm.tools import ToolSpec, describe_tools, json_turn_schema, plain_turns

log = structlog.get_logger(__name__)

BACKOFF_BASE = 0.5  # seconds before the first retry; doubles each time
BACKOFF_CAP = 8.0  # seconds; also caps a provider's Retry-After
RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Completion:
    content: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    mode: Mode | None = None  # how JSON was asked for; None: it was not
    finish_reason: str | None = None  # "length": cut off at the token cap
    native_tools: bool = False  # tools were offered through the API's own tool calling
    tool_calls: tuple[tuple[str, str, str], ...] = ()  # (id, name, arguments as sent)


@dataclass(frozen=True)
class CallRecord:
    """One request to a provider, whatever its outcome; what cost accounting stores."""

    provider: str
    model: str
    outcome: str  # ok, malformed, timeout, rate_limited, rejected, error, circuit_open
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0


UsageSink = Callable[[CallRecord], None]
# Told the reply's whole text so far, each time more of a streamed reply arrives.
TextSink = Callable[[str], None]


@dataclass
class Provider:
    name: str
    model: str
    client: openai.OpenAI
    breaker: CircuitBreaker
    base_url: str | None = None
    timeout: float = 30.0  # seconds of silence from the server before giving up


@dataclass
class _Outcome:
    """How one provider's turn ended when it gave no completion."""

    rejected: bool = False


@dataclass
class ProviderChain:
    providers: list[Provider]
    max_retries: int
    sleep: Callable[[float], None] = time.sleep
    tracer: Tracer = field(default_factory=NoOpTracer)  # a span per request to a provider
    limits: RequestLimits = field(default_factory=RequestLimits)
    quirks: QuirkMemory = field(default_factory=QuirkMemory)

    def with_primary_model(self, model: str) -> ProviderChain:
        """This chain with its first provider asking for `model` (an agent template's).

        Only the primary changes: a model name belongs to one vendor, and the fallbacks are
        usually other vendors (Groq, a local Ollama) that would answer an unknown name with
        an error, so keeping their own models is what keeps fallback working. The
        providers' clients, circuit breakers and learnt quirks are shared with this chain.
        """
        if not self.providers or self.providers[0].model == model:
            return self
        primary = replace(self.providers[0], model=model)
        return replace(self, providers=[primary, *self.providers[1:]])

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        on_call: UsageSink,
        response_format: dict[str, Any] | None = None,
        schema: JsonSchema | None = None,
        purpose: str = "default",
        on_text: TextSink | None = None,
        tools: Sequence[ToolSpec] | None = None,
    ) -> Completion:
        """The first provider's answer that arrives; ``on_text`` hears the text so far as
        it grows (restarting with each attempt).

        With ``schema``, JSON is asked for in the way each provider takes (see
        `core.llm.formats`); ``response_format`` is sent as given otherwise. With
        ``tools``, a tool turn: native tool calling, or a JSON turn (`core.llm.tools`).
        """
        rejected = False
        for provider in self.providers:
            if not provider.breaker.allow():
                on_call(CallRecord(provider.name, provider.model, "circuit_open"))
                continue
            request = _Request(messages, response_format, schema, purpose, tools)
            outcome = _Outcome()
            completion = self._try_provider(provider, request, on_call, on_text, outcome)
            if completion is not None:
                return completion
            rejected = rejected or outcome.rejected
            log.warning("llm.provider_failed", provider=provider.name)
        if rejected:
            raise LLMRequestRejected("the language model refused the request")
        raise LLMUnavailable("no language model provider answered")

    def _try_provider(
        self,
        provider: Provider,
        request: _Request,
        on_call: UsageSink,
        on_text: TextSink | None,
        outcome: _Outcome,
    ) -> Completion | None:
        attempt = 0
        while attempt <= self.max_retries:
            quirks = self.quirks.get(provider.base_url, provider.model)
            started = time.monotonic()
            try:
                with self.tracer.start_as_current_span(
                    "llm.call",
                    kind=SpanKind.CLIENT,
                    attributes={"llm.provider": provider.name, "llm.model": provider.model},
                ):
                    streamed = _request(provider, request, quirks, self.limits, on_text)
            except openai.APIError as exc:
                latency_ms = int((time.monotonic() - started) * 1000)
                native_tools = request.tools is not None and quirks.tools == "native"
                adapted = adapt(
                    quirks,
                    exc,
                    structured=request.schema is not None
                    or (request.tools is not None and not native_tools),
                    tools=native_tools,
                )
                if adapted is not None:
                    # The server refused a detail of the request, not the request: ask
                    # again at once without it, and remember; no retry is used up.
                    adapted = self.quirks.learn(provider.base_url, provider.model, adapted)
                    on_call(
                        CallRecord(provider.name, provider.model, "rejected", latency_ms=latency_ms)
                    )
                    log.warning(
                        "llm.request_adapted",
                        provider=provider.name,
                        model=provider.model,
                        status=status_of(exc),
                        body=loggable_body(exc, request.messages, provider.client.api_key),
                        was=_describe_quirks(quirks),
                        now=_describe_quirks(adapted),
                    )
                    continue
                kind, retryable, wait = _classify(exc)
                on_call(CallRecord(provider.name, provider.model, kind, latency_ms=latency_ms))
                log.warning(
                    "llm.call_failed",
                    provider=provider.name,
                    model=provider.model,
                    outcome=kind,
                    attempt=attempt + 1,
                    error=type(exc).__name__,
                    status=status_of(exc),
                    body=loggable_body(exc, request.messages, provider.client.api_key),
                )
                if kind == "rejected":
                    outcome.rejected = True
                if not retryable:
                    break
                if attempt < self.max_retries:
                    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                    self.sleep(wait if wait is not None else backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security
                attempt += 1
                continue
            latency_ms = int((time.monotonic() - started) * 1000)
            provider.breaker.record_success()
            usage = streamed.usage
            if streamed.finish_reason == "length":
                log.warning(
                    "llm.reply_cut_off",
                    provider=provider.name,
                    purpose=request.purpose,
                    max_tokens=self.limits.tokens_for(request.purpose),
                )
            return Completion(
                content=streamed.content,
                provider=provider.name,
                model=provider.model,
                # A server that sends no usage in streams (llama-cpp-python's) is
                # estimated rather than counted as free, so token budgets still hold.
                prompt_tokens=usage.prompt_tokens if usage else _estimate(request.messages),
                completion_tokens=(
                    usage.completion_tokens if usage else _estimate_text(streamed.content)
                ),
                latency_ms=latency_ms,
                mode=quirks.mode if request.schema is not None else None,
                finish_reason=streamed.finish_reason,
                native_tools=request.tools is not None and quirks.tools == "native",
                tool_calls=tuple(
                    (call["id"], call["name"], call["arguments"]) for call in streamed.tool_calls
                ),
            )
        provider.breaker.record_failure()
        return None

    def remember_json_tools(self, provider_name: str, model: str) -> None:
        """That provider's model answers tool turns as text: use JSON turns from now on."""
        for provider in self.providers:
            if provider.name == provider_name and provider.model == model:
                self.quirks.learn(provider.base_url, model, Quirks(tools="json"))
                log.info("llm.tools_as_json", provider=provider_name, model=model)


@dataclass(frozen=True)
class _Request:
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    schema: JsonSchema | None
    purpose: str
    tools: Sequence[ToolSpec] | None


@dataclass
class _Streamed:
    content: str = ""
    usage: CompletionUsage | None = None
    finish_reason: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)


def _request(
    provider: Provider,
    request: _Request,
    quirks: Quirks,
    limits: RequestLimits,
    on_text: TextSink | None,
) -> _Streamed:
    """One streamed chat completion. Errors, before or during the stream, raise."""
    # Plain dicts are what the HTTP API takes; the typed overloads want TypedDicts.
    create: Any = provider.client.chat.completions.create
    messages = request.messages
    body: dict[str, Any] = {}
    schema = request.schema
    if request.tools is not None and quirks.tools == "native":
        body["tools"] = [tool.native() for tool in request.tools]
        body["tool_choice"] = "auto"
    elif request.tools is not None:
        schema = json_turn_schema(request.tools)
        messages = with_system_note(plain_turns(messages), describe_tools(request.tools))
    if schema is not None:
        messages = schema.messages(messages, quirks.mode)
        response_format = schema.response_format(quirks.mode)
    else:
        response_format = request.response_format
    if response_format is not None:
        body["response_format"] = response_format
    body[quirks.length_param] = limits.tokens_for(request.purpose)
    if quirks.temperature and limits.temperature is not None:
        body["temperature"] = limits.temperature
    # A sampling setting like the temperature: a provider that takes no temperature
    # (reasoning models) takes no penalty either, so one quirk drops both.
    if quirks.temperature and limits.frequency_penalty:
        body["frequency_penalty"] = limits.frequency_penalty
    if quirks.stream_options:
        body["stream_options"] = {"include_usage": True}
    stream = create(
        model=provider.model,
        messages=messages,
        stream=True,
        # The request id of the job, for the provider's logs and any proxy.
        extra_headers=correlation_headers(),
        extra_body=body,
        # Between two pieces of the reply; shorter when the job's time is nearly up.
        timeout=http_timeout(capped_by_deadline(provider.timeout)),
    )
    result = _Streamed()
    parts: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        result.usage = chunk.usage or result.usage  # only the last chunk carries it
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        result.finish_reason = choice.finish_reason or result.finish_reason
        delta = choice.delta
        if delta is None:
            continue
        if delta.content:
            parts.append(delta.content)
            if on_text is not None:
                on_text("".join(parts))
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            if call.id:
                entry["id"] = call.id
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    result.content = "".join(parts)
    result.tool_calls = [calls[index] for index in sorted(calls)]
    return result


CHARS_PER_TOKEN = 3  # a cautious average: English runs about 4, code and JSON fewer


def _estimate_text(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


def _estimate(messages: list[dict[str, Any]]) -> int:
    return sum(
        _estimate_text(content) + 4  # and a few for each turn's role markers
        for message in messages
        if isinstance(content := message.get("content"), str)
    )


def _describe_quirks(quirks: Quirks) -> str:
    details = [f"json={quirks.mode}", quirks.length_param]
    if not quirks.temperature:
        details.append("no temperature")
    if not quirks.stream_options:
        details.append("no stream_options")
    return ", ".join(details)


def _classify(exc: openai.APIError) -> tuple[str, bool, float | None]:
    """(outcome, retryable, seconds the provider asked us to wait)."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", True, None
    if isinstance(exc, openai.APIConnectionError):
        return "error", True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return "rate_limited", True, _retry_after(exc)
        if status in RETRYABLE_STATUS or status >= 500:
            return "error", True, None
        if 400 <= status < 500:
            return "rejected", False, None
    return "error", False, None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return min(BACKOFF_CAP, float(value)) if value is not None else None
    except ValueError:
        return None


def build_chain(
    providers: list[tuple[str, str | None, str, str]],
    *,
    timeout: float | None,
    max_retries: int,
    circuit_failures: int,
    circuit_reset: float,
    tracer: Tracer | None = None,
    limits: RequestLimits | None = None,
    timeouts: dict[str, float] | None = None,
) -> ProviderChain:
    """Providers as (name, base_url, api_key, model), in fallback order.

    ``timeout`` applies to every provider; None gives each the default for where it runs
    (`core.llm.limits.timeout_seconds`). ``timeouts`` overrides it by provider name.
    """
    built = []
    for name, base_url, api_key, model in providers:
        seconds = (timeouts or {}).get(name) or timeout_seconds(base_url, timeout)
        built.append(
            Provider(
                name=name,
                model=model,
                # The client's own retries are off: retries and fallback are decided here,
                # where the circuit breaker and cost accounting can see every attempt.
                client=openai.OpenAI(
                    base_url=base_url, api_key=api_key, timeout=http_timeout(seconds), max_retries=0
                ),
                breaker=CircuitBreaker(circuit_failures, circuit_reset),
                base_url=base_url,
                timeout=seconds,
            )
        )
    return ProviderChain(
        providers=built,
        max_retries=max_retries,
        tracer=tracer if tracer is not None else NoOpTracer(),
        limits=limits if limits is not None else RequestLimits(),
    )
