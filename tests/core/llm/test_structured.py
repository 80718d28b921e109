"""Asking providers for schema-valid JSON: fallback, retries, malformed output, accounting.

These talk to two real HTTP servers speaking the OpenAI API through the real `openai`
client; nothing in between is mocked.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from core.llm.errors import LLMUnavailable, MalformedOutput
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import StructuredLLM
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Failure, Garbage, Hang, Reply


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str


def make_llm(
    primary: OpenAIEmulator,
    fallback: OpenAIEmulator,
    *,
    timeout: float = 2.0,
    circuit_failures: int = 5,
) -> StructuredLLM:
    chain = build_chain(
        [
            ("primary", primary.base_url, "k1", "model-a"),
            ("fallback", fallback.base_url, "k2", "model-b"),
        ],
        timeout=timeout,
        max_retries=1,
        circuit_failures=circuit_failures,
        circuit_reset=60.0,
    )
    chain.sleep = lambda _seconds: None  # backoff waits are not what these tests measure
    return StructuredLLM(chain, malformed_retries=1)


# The session's worker shares these emulators; the marker keeps this module's scripts and
# request log apart from any call a worker is still making.
MARKER = "[structured-llm-tests]"
QUESTION = [{"role": "user", "content": f"What is the refund window? {MARKER}"}]


def test_valid_json_is_parsed_and_usage_recorded(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """A schema-valid reply comes back as the model, with its tokens accounted."""
    llm.script(
        Reply(content={"answer": "30 days"}, prompt_tokens=11, completion_tokens=3), match=MARKER
    )
    calls: list[CallRecord] = []
    result = make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=calls.append)
    assert result == Answer(answer="30 days")
    assert calls == [CallRecord("primary", "model-a", "ok", 11, 3, calls[0].latency_ms)]
    sent = llm.requests(match=MARKER)[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["answer"]


def test_primary_500_falls_back_to_the_next_provider(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """A provider failing with 500 is retried, then the fallback answers."""
    llm.script(Failure(500, "upstream exploded", repeat=True), match=MARKER)
    llm_fallback.script(Reply(content={"answer": "from fallback"}), match=MARKER)
    calls: list[CallRecord] = []
    result = make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=calls.append)
    assert result.answer == "from fallback"
    assert [(c.provider, c.outcome) for c in calls] == [
        ("primary", "error"),
        ("primary", "error"),
        ("fallback", "ok"),
    ]


def test_timeout_on_primary_falls_back(llm: OpenAIEmulator, llm_fallback: OpenAIEmulator) -> None:
    """A provider that does not answer within the timeout is abandoned for the fallback."""
    llm.script(Hang(30, repeat=True), match=MARKER)
    llm_fallback.script(Reply(content={"answer": "in time"}), match=MARKER)
    calls: list[CallRecord] = []
    result = make_llm(llm, llm_fallback, timeout=0.5).ask(Answer, QUESTION, on_call=calls.append)
    assert result.answer == "in time"
    assert [c.outcome for c in calls if c.provider == "primary"] == ["timeout", "timeout"]


def test_client_errors_are_not_retried(llm: OpenAIEmulator, llm_fallback: OpenAIEmulator) -> None:
    """A 400 from a provider is not transient: no retry there, straight to the fallback."""
    llm.script(Failure(400, "bad request", repeat=True), match=MARKER)
    llm_fallback.script(Reply(content={"answer": "ok"}), match=MARKER)
    calls: list[CallRecord] = []
    make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=calls.append)
    assert [c.provider for c in calls] == ["primary", "fallback"]


def test_rate_limit_is_waited_out_on_the_same_provider(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """A 429 with Retry-After is retried on the same provider after the wait it asked for."""
    llm.script(
        Failure(429, "slow down", retry_after=0.2), Reply(content={"answer": "later"}), match=MARKER
    )
    model = make_llm(llm, llm_fallback)
    waits: list[float] = []
    model.chain.sleep = waits.append
    result = model.ask(Answer, QUESTION, on_call=lambda _c: None)
    assert result.answer == "later"
    assert waits == [0.2]
    assert llm_fallback.requests(match=MARKER) == []


def test_malformed_output_is_re_asked_then_given_up(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """Garbage is re-asked with the problem shown; persistent garbage raises MalformedOutput."""
    llm.script(Garbage("this is not json", repeat=True), match=MARKER)
    calls: list[CallRecord] = []
    with pytest.raises(MalformedOutput):
        make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=calls.append)
    assert [c.outcome for c in calls] == ["malformed", "malformed"]
    second = llm.requests(match=MARKER)[1]
    assert "not valid JSON" in second["messages"][-1]["content"]


def test_malformed_then_valid_succeeds(llm: OpenAIEmulator, llm_fallback: OpenAIEmulator) -> None:
    """One bad reply followed by a good one still yields the answer."""
    llm.script(Reply(content={"wrong": "shape"}), Reply(content={"answer": "fixed"}), match=MARKER)
    assert (
        make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=lambda _c: None).answer == "fixed"
    )


def test_all_providers_down_raises_unavailable(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """When every provider fails, the caller gets LLMUnavailable rather than a hang or crash."""
    llm.script(Failure(503, "down", repeat=True), match=MARKER)
    llm_fallback.script(Failure(503, "down", repeat=True), match=MARKER)
    with pytest.raises(LLMUnavailable):
        make_llm(llm, llm_fallback).ask(Answer, QUESTION, on_call=lambda _c: None)


def test_open_circuit_skips_the_failing_provider(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """After its circuit opens, a failing provider is not called at all until it cools down."""
    llm.script(Failure(500, "down", repeat=True), match=MARKER)
    llm_fallback.script(Reply(content={"answer": "fb"}, repeat=True), match=MARKER)
    model = make_llm(llm, llm_fallback, circuit_failures=1)
    model.ask(Answer, QUESTION, on_call=lambda _c: None)
    primary_calls = len(llm.requests(match=MARKER))
    calls: list[CallRecord] = []
    model.ask(Answer, QUESTION, on_call=calls.append)
    assert len(llm.requests(match=MARKER)) == primary_calls
    assert [(c.provider, c.outcome) for c in calls] == [
        ("primary", "circuit_open"),
        ("fallback", "ok"),
    ]
