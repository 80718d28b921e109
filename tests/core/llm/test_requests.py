"""Requests that real servers accept: token caps, the JSON format each server takes,
truthful errors, timeouts that suit where the model runs.

Each test talks to the OpenAI emulator over HTTP through the real `openai` client; the
emulator's refusals reproduce what real servers were seen to answer (see
`sandbox/openai_script.py`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, ConfigDict
from structlog.testing import capture_logs

from core.llm.errors import LLMRequestRejected, LLMUnavailable
from core.llm.limits import RequestLimits, is_local, job_deadline, timeout_seconds
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import StructuredLLM
from core.settings import load_settings
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import (
    Failure,
    Garbage,
    Hang,
    Refusal,
    Reply,
    llama_cpp_python_json_schema,
    reasoning_model_max_tokens,
    strict_json_object,
)

MARKER = "[llm-request-tests]"
API_KEY = "sk-test-secret-0123456789"
QUESTION = f"What is the refund window for annual plans? {MARKER}"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer questions about our policies."},
    {"role": "user", "content": QUESTION},
]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str


def make_llm(
    primary: OpenAIEmulator,
    model: str,
    *,
    fallback: OpenAIEmulator | None = None,
    max_retries: int = 0,
    timeout: float | None = 5.0,
    limits: RequestLimits | None = None,
) -> StructuredLLM:
    providers = [("primary", primary.base_url, API_KEY, model)]
    if fallback is not None:
        providers.append(("fallback", fallback.base_url, "k2", f"{model}-fallback"))
    chain = build_chain(
        providers,
        timeout=timeout,
        max_retries=max_retries,
        circuit_failures=100,
        circuit_reset=60.0,
        limits=limits,
    )
    chain.sleep = lambda _seconds: None
    return StructuredLLM(chain, malformed_retries=1)


def formats_sent(emulator: OpenAIEmulator) -> list[str | None]:
    return [(body.get("response_format") or {}).get("type") for body in emulator.requests(MARKER)]


def test_every_call_has_a_token_cap_for_its_purpose_and_a_low_temperature(
    llm: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings' caps reach the server, chosen by what the call is for."""
    monkeypatch.setenv("LLM_MAX_TOKENS_PLAN", "300")
    monkeypatch.setenv("LLM_MAX_TOKENS_DRAFT", "900")
    monkeypatch.setenv("LLM_TEMPERATURE", "0.1")
    settings = load_settings(database_url="postgresql://unused", slack_signing_secret="s")
    model = make_llm(llm, "caps-model", limits=settings.llm_limits)
    llm.script(Reply(content={"answer": "a"}, repeat=True), match=MARKER)

    model.ask(Answer, MESSAGES, on_call=lambda _c: None, purpose="plan")
    model.ask(Answer, MESSAGES, on_call=lambda _c: None, purpose="draft")
    model.ask(Answer, MESSAGES, on_call=lambda _c: None)  # an existing caller: no purpose

    sent = llm.requests(MARKER)
    assert [body["max_tokens"] for body in sent] == [300, 900, 1024]
    assert {body["temperature"] for body in sent} == {0.1}


def test_defaults_cap_every_call_too(llm: OpenAIEmulator) -> None:
    """Without settings, a chain still caps replies and sends a low temperature."""
    llm.script(Reply(content={"answer": "a"}), match=MARKER)
    make_llm(llm, "default-caps").ask(Answer, MESSAGES, on_call=lambda _c: None, purpose="plan")
    (body,) = llm.requests(MARKER)
    assert body["max_tokens"] == 768
    assert body["temperature"] == 0.2
    assert body["frequency_penalty"] == 0.3  # so a small model does not loop on a sentence


def test_a_server_refusing_the_frequency_penalty_is_asked_again_without_sampling_settings(
    llm: OpenAIEmulator,
) -> None:
    """A model that takes no sampling settings (as reasoning models refuse temperature)
    gets the same call again at once without them, and from then on."""
    llm.refuse(
        Refusal(
            "no-penalty",
            "frequency_penalty",
            None,
            Failure(400, "Unsupported parameter: 'frequency_penalty' is not supported"),
        )
    )
    llm.script(Reply(content={"answer": "a"}, repeat=True), match=MARKER)
    model = make_llm(llm, "no-penalty")

    assert model.ask(Answer, MESSAGES, on_call=lambda _c: None).answer == "a"
    model.ask(Answer, MESSAGES, on_call=lambda _c: None)

    refused, *answered = llm.requests(MARKER)
    assert refused["frequency_penalty"] == 0.3
    assert len(answered) == 2
    assert all("frequency_penalty" not in b and "temperature" not in b for b in answered)


def test_a_server_refusing_json_schema_with_500_gets_json_object_at_once_and_from_then_on(
    llm: OpenAIEmulator,
) -> None:
    """llama-cpp-python's server: 500 to json_schema. The same call steps down to
    json_object with the schema, without using up a retry (there are none here), and the
    next call starts there."""
    llm.refuse(llama_cpp_python_json_schema("lcp-model"))
    llm.script(Reply(content={"answer": "30 days"}, repeat=True), match=MARKER)
    model = make_llm(llm, "lcp-model", max_retries=0)
    calls: list[CallRecord] = []

    first = model.ask(Answer, MESSAGES, on_call=calls.append)
    second = model.ask(Answer, MESSAGES, on_call=calls.append)

    assert first.answer == second.answer == "30 days"
    assert formats_sent(llm) == ["json_schema", "json_object", "json_object"]
    assert [c.outcome for c in calls] == ["rejected", "ok", "ok"]
    stepped = llm.requests(MARKER)[1]
    assert stepped["response_format"]["schema"]["required"] == ["answer"]
    # Still one system message, first, now also carrying the schema for the model to read.
    assert [m["role"] for m in stepped["messages"]] == ["system", "user"]
    assert '"required":["answer"]' in stepped["messages"][0]["content"]


def test_a_template_model_on_the_same_server_learns_for_itself(llm: OpenAIEmulator) -> None:
    """What one model takes is remembered for that base URL and model only."""
    llm.refuse(llama_cpp_python_json_schema("lcp-a"))
    llm.script(Reply(content={"answer": "ok"}, repeat=True), match=MARKER)
    model = make_llm(llm, "lcp-a")
    model.ask(Answer, MESSAGES, on_call=lambda _c: None)
    other = StructuredLLM(model.chain.with_primary_model("other-model"), 1)
    other.ask(Answer, MESSAGES, on_call=lambda _c: None)
    assert formats_sent(llm) == ["json_schema", "json_object", "json_schema"]


def test_a_server_refusing_the_schema_key_gets_plain_json_object(llm: OpenAIEmulator) -> None:
    """Servers that take json_schema for some models only and refuse json_object's extra
    schema key (400 naming it) end on plain json_object, the schema in the prompt."""
    llm.refuse(
        Refusal(
            "groq-like",
            "response_format.type",
            "json_schema",
            Failure(400, "`response_format.type` json_schema is not supported with this model"),
        )
    )
    llm.refuse(strict_json_object("groq-like"))
    llm.script(Reply(content={"answer": "30 days"}), match=MARKER)
    result = make_llm(llm, "groq-like").ask(Answer, MESSAGES, on_call=lambda _c: None)
    assert result.answer == "30 days"
    assert formats_sent(llm) == ["json_schema", "json_object", "json_object"]
    last = llm.requests(MARKER)[-1]
    assert last["response_format"] == {"type": "json_object"}
    assert "JSON schema (Answer)" in last["messages"][0]["content"]


def test_400s_naming_the_format_step_down_to_json_in_the_prompt(llm: OpenAIEmulator) -> None:
    """A server that takes no response format at all (400 naming response_format each
    time) is asked with the schema in the prompt only; JSON in a code fence is still read."""
    for kind in ("json_schema", "json_object"):
        llm.refuse(
            Refusal(
                "plain-model",
                "response_format.type",
                kind,
                Failure(400, f"Invalid value for 'response_format': {kind} is not supported."),
            )
        )
    llm.script(
        Garbage('Sure! Here it is:\n```json\n{"answer": "30 days"}\n```\nAnything else?'),
        match=MARKER,
    )
    calls: list[CallRecord] = []
    result = make_llm(llm, "plain-model").ask(Answer, MESSAGES, on_call=calls.append)
    assert result.answer == "30 days"
    assert formats_sent(llm) == ["json_schema", "json_object", "json_object", None]
    assert [c.outcome for c in calls] == ["rejected", "rejected", "rejected", "ok"]
    last = llm.requests(MARKER)[-1]
    assert "JSON schema (Answer)" in last["messages"][0]["content"]
    assert [m["role"] for m in last["messages"]] == ["system", "user"]


def test_a_reasoning_model_gets_max_completion_tokens(llm: OpenAIEmulator) -> None:
    """A 400 saying "use max_completion_tokens" is followed, once, and remembered."""
    llm.refuse(reasoning_model_max_tokens("reasoner"))
    llm.script(Reply(content={"answer": "ok"}, repeat=True), match=MARKER)
    model = make_llm(llm, "reasoner")
    model.ask(Answer, MESSAGES, on_call=lambda _c: None, purpose="draft")
    model.ask(Answer, MESSAGES, on_call=lambda _c: None, purpose="draft")
    sent = llm.requests(MARKER)
    assert ["max_tokens" in body for body in sent] == [True, False, False]
    assert [body.get("max_completion_tokens") for body in sent[1:]] == [1024, 1024]


def test_a_refused_request_is_not_retried_and_is_not_called_unavailable(
    llm: OpenAIEmulator, llm_fallback: OpenAIEmulator
) -> None:
    """A 400 that is not about the format (a chat template refusing the message layout)
    is tried once per provider, logged with its status and body, and raised as
    LLMRequestRejected; the logs never hold the key or the prompt."""
    refusal = (
        f"Conversation roles must alternate user/assistant/user/assistant/... (got: {QUESTION})"
    )
    llm.script(Failure(400, refusal, repeat=True), match=MARKER)
    # A server quoting part of the prompt back, the way validation errors do.
    partial = f"roles must alternate (near {QUESTION[4:50]!r})"
    llm_fallback.script(Failure(422, partial, repeat=True), match=MARKER)
    model = make_llm(llm, "gemma-like", fallback=llm_fallback, max_retries=2)
    calls: list[CallRecord] = []
    with (
        capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
        pytest.raises(LLMRequestRejected) as raised,
    ):
        model.ask(Answer, MESSAGES, on_call=calls.append)

    assert str(raised.value) == "the language model refused the request"
    assert [(c.provider, c.outcome) for c in calls] == [
        ("primary", "rejected"),
        ("fallback", "rejected"),
    ]
    failures = [entry for entry in logs if entry["event"] == "llm.call_failed"]
    assert [entry["status"] for entry in failures] == [400, 422]
    assert "Conversation roles must alternate" in failures[0]["body"]
    assert failures[1]["body"].startswith('{"error": {"message": "roles must alternate (near')
    logged = repr(logs)
    assert API_KEY not in logged
    assert "refund window" not in logged
    assert "annual plans" not in logged


def test_a_server_error_without_format_words_is_still_retried_as_before(
    llm: OpenAIEmulator,
) -> None:
    """A plain 500 is a failing server, not a format problem: retried, then unavailable."""
    llm.script(Failure(500, "upstream exploded", repeat=True), match=MARKER)
    with pytest.raises(LLMUnavailable) as raised:
        make_llm(llm, "flaky", max_retries=1).ask(Answer, MESSAGES, on_call=lambda _c: None)
    assert not isinstance(raised.value, LLMRequestRejected)
    assert formats_sent(llm) == ["json_schema", "json_schema"]


def test_a_slow_model_still_writing_does_not_time_out(llm: OpenAIEmulator) -> None:
    """Replies are streamed, so the timeout is the silence between pieces: a reply taking
    three times the timeout to write, a piece every 0.3 s, arrives whole."""
    content = {"answer": "Refunds are possible within 30 days of purchase."}
    llm.script(Reply(content=content, piece_delay=0.3), match=MARKER)
    calls: list[CallRecord] = []
    started = time.monotonic()
    result = make_llm(llm, "slow-writer", timeout=1.0).ask(Answer, MESSAGES, on_call=calls.append)
    assert time.monotonic() - started > 3.0
    assert result.answer == content["answer"]
    assert [c.outcome for c in calls] == ["ok"]
    assert llm.requests(MARKER)[0]["stream"] is True


def test_a_silent_server_still_times_out(llm: OpenAIEmulator) -> None:
    """Silence longer than the timeout is a timeout, as before."""
    llm.script(Hang(10, repeat=True), match=MARKER)
    calls: list[CallRecord] = []
    started = time.monotonic()
    with pytest.raises(LLMUnavailable):
        make_llm(llm, "silent", timeout=0.5).ask(Answer, MESSAGES, on_call=calls.append)
    assert time.monotonic() - started < 5
    assert [c.outcome for c in calls] == ["timeout"]


def test_a_jobs_deadline_shortens_the_wait(llm: OpenAIEmulator) -> None:
    """Inside a job with one second left, a provider allowed 60 s of silence is given up
    on soon after the deadline (two seconds of slack), not a minute later."""
    llm.script(Hang(30, repeat=True), match=MARKER)
    started = time.monotonic()
    with job_deadline(1.0), pytest.raises(LLMUnavailable):
        make_llm(llm, "deadline", timeout=60.0).ask(Answer, MESSAGES, on_call=lambda _c: None)
    assert time.monotonic() - started < 6


@pytest.mark.parametrize(
    ("base_url", "seconds"),
    [
        (None, 30.0),  # api.openai.com
        ("https://api.groq.com/openai/v1", 30.0),
        ("http://127.0.0.1:8090/v1", 180.0),
        ("http://localhost:11434/v1", 180.0),
        ("http://[::1]:8080/v1", 180.0),
        ("http://192.168.1.20:11434/v1", 180.0),
        ("http://10.0.0.7/v1", 180.0),
        ("http://ollama:11434/v1", 180.0),  # a Compose service
        ("http://host.docker.internal:11434/v1", 180.0),
    ],
)
def test_local_servers_get_a_longer_default_timeout(base_url: str | None, seconds: float) -> None:
    assert timeout_seconds(base_url, None) == seconds
    assert is_local(base_url) == (seconds == 180.0)
    assert timeout_seconds(base_url, 12.0) == 12.0  # LLM_TIMEOUT_SECONDS wins when set


def test_each_provider_gets_the_timeout_for_where_it_runs(llm: OpenAIEmulator) -> None:
    chain = build_chain(
        [
            ("local", llm.base_url, "k", "m"),
            ("cloud", "https://api.example.com/v1", "k", "m"),
            ("tuned", "https://api.example.org/v1", "k", "m"),
        ],
        timeout=None,
        max_retries=0,
        circuit_failures=1,
        circuit_reset=1.0,
        timeouts={"tuned": 75.0},
    )
    assert [p.timeout for p in chain.providers] == [180.0, 30.0, 75.0]


def test_a_stream_without_usage_is_estimated_not_free(llm: OpenAIEmulator) -> None:
    """llama-cpp-python's server sends no usage in streams: the call is still counted,
    with an estimate on the cautious side, so token budgets keep holding."""
    content = {"answer": "Refunds are possible within 30 days of purchase."}
    llm.script(Reply(content=content, stream_usage=False), match=MARKER)
    calls: list[CallRecord] = []
    make_llm(llm, "no-usage").ask(Answer, MESSAGES, on_call=calls.append)
    (record,) = calls
    prompt_chars = sum(len(m["content"]) for m in MESSAGES)
    assert record.prompt_tokens >= prompt_chars // 4
    assert record.completion_tokens >= len('{"answer": ""}') // 4 + len(content["answer"]) // 4


def test_a_placeholder_key_does_not_garble_the_logged_body(llm: OpenAIEmulator) -> None:
    """Local servers take any key ("x"); masking it must not eat every x in the body."""
    llm.refuse(llama_cpp_python_json_schema("lcp-key"))
    llm.script(Reply(content={"answer": "ok"}), match=MARKER)
    chain = build_chain(
        [("local", llm.base_url, "x", "lcp-key")],
        timeout=5.0,
        max_retries=0,
        circuit_failures=5,
        circuit_reset=60.0,
    )
    with capture_logs() as logs:
        StructuredLLM(chain, 0).ask(Answer, MESSAGES, on_call=lambda _c: None)
    (adapted,) = [entry for entry in logs if entry["event"] == "llm.request_adapted"]
    assert adapted["status"] == 500
    assert "Input should be 'text' or 'json_object'" in adapted["body"]
