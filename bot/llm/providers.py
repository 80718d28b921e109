"""Calling OpenAI-compatible endpoints in order, with retries, timeouts and fallback.

Each provider is the official `openai` client aimed at one base URL. Transient failures
(timeouts, connection errors, 429, 5xx) are retried with backoff on the same provider;
anything else, or running out of retries, moves on to the next provider. A provider that
keeps failing has its circuit opened and is skipped until it cools down.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import openai
import structlog
from openai.types import CompletionUsage
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

from bot.llm.circuit import CircuitBreaker
from bot.llm.errors import LLMUnavailable
from bot.observability.correlation import correlation_headers

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


@dataclass(frozen=True)
class CallRecord:
    """One request to a provider, whatever its outcome; what cost accounting stores."""

    provider: str
    model: str
    outcome: str  # ok, malformed, timeout, rate_limited, error, circuit_open
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


@dataclass
class ProviderChain:
    providers: list[Provider]
    max_retries: int
    sleep: Callable[[float], None] = time.sleep
    tracer: Tracer = field(default_factory=NoOpTracer)  # a span per request to a provider

    def with_primary_model(self, model: str) -> ProviderChain:
        """This chain with its first provider asking for `model` (an agent template's).

        Only the primary changes: a model name belongs to one vendor, and the fallbacks are
        usually other vendors (Groq, a local Ollama) that would answer an unknown name with
        an error, so keeping their own models is what keeps fallback working. The
        providers' clients and circuit breakers are shared with this chain.
        """
        if not self.providers or self.providers[0].model == model:
            return self
        primary = replace(self.providers[0], model=model)
        return replace(self, providers=[primary, *self.providers[1:]])

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        response_format: dict[str, Any],
        on_call: UsageSink,
        on_text: TextSink | None = None,
    ) -> Completion:
        """The first provider's answer that arrives; with ``on_text`` it is streamed and
        ``on_text`` hears the text so far as it grows (restarting with each attempt)."""
        for provider in self.providers:
            if not provider.breaker.allow():
                on_call(CallRecord(provider.name, provider.model, "circuit_open"))
                continue
            completion = self._try_provider(provider, messages, response_format, on_call, on_text)
            if completion is not None:
                return completion
            log.warning("llm.provider_failed", provider=provider.name)
        raise LLMUnavailable("no language model provider answered")

    def _try_provider(
        self,
        provider: Provider,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any],
        on_call: UsageSink,
        on_text: TextSink | None,
    ) -> Completion | None:
        for attempt in range(self.max_retries + 1):
            started = time.monotonic()
            try:
                with self.tracer.start_as_current_span(
                    "llm.call",
                    kind=SpanKind.CLIENT,
                    attributes={"llm.provider": provider.name, "llm.model": provider.model},
                ):
                    content, usage = _request(provider, messages, response_format, on_text)
            except openai.APIError as exc:
                latency_ms = int((time.monotonic() - started) * 1000)
                outcome, retryable, wait = _classify(exc)
                on_call(CallRecord(provider.name, provider.model, outcome, latency_ms=latency_ms))
                log.warning(
                    "llm.call_failed",
                    provider=provider.name,
                    outcome=outcome,
                    attempt=attempt + 1,
                    error=type(exc).__name__,
                )
                if not retryable:
                    break
                if attempt < self.max_retries:
                    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                    self.sleep(wait if wait is not None else backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security
                continue
            latency_ms = int((time.monotonic() - started) * 1000)
            provider.breaker.record_success()
            return Completion(
                content=content,
                provider=provider.name,
                model=provider.model,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                latency_ms=latency_ms,
            )
        provider.breaker.record_failure()
        return None


def _request(
    provider: Provider,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any],
    on_text: TextSink | None,
) -> tuple[str, CompletionUsage | None]:
    """One chat completion: (content, usage). Errors mid-stream raise like any other."""
    # Plain dicts are what the HTTP API takes; the typed overloads want TypedDicts.
    create: Any = provider.client.chat.completions.create
    # The request id of the job, for the provider's logs and any proxy.
    common = {
        "model": provider.model,
        "messages": messages,
        "response_format": response_format,
        "extra_headers": correlation_headers(),
    }
    if on_text is None:
        response = create(**common)
        content = response.choices[0].message.content if response.choices else None
        return content or "", response.usage
    stream = create(**common, stream=True, stream_options={"include_usage": True})
    parts: list[str] = []
    usage: CompletionUsage | None = None
    for chunk in stream:
        usage = chunk.usage or usage  # only the last chunk carries it
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            parts.append(piece)
            on_text("".join(parts))
    return "".join(parts), usage


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
        return "error", status in RETRYABLE_STATUS or status >= 500, None
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
    timeout: float,
    max_retries: int,
    circuit_failures: int,
    circuit_reset: float,
    tracer: Tracer | None = None,
) -> ProviderChain:
    """Providers as (name, base_url, api_key, model), in fallback order."""
    return ProviderChain(
        providers=[
            Provider(
                name=name,
                model=model,
                # The client's own retries are off: retries and fallback are decided here,
                # where the circuit breaker and cost accounting can see every attempt.
                client=openai.OpenAI(
                    base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
                ),
                breaker=CircuitBreaker(circuit_failures, circuit_reset),
            )
            for name, base_url, api_key, model in providers
        ],
        max_retries=max_retries,
        tracer=tracer if tracer is not None else NoOpTracer(),
    )
