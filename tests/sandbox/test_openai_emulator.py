"""The OpenAI emulator, exercised through the real official ``openai`` client."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from sandbox.openai_emulator import (
    EMBEDDINGS_PATH,
    NO_SCRIPT_MESSAGE,
    EmulatorConfig,
    OpenAIEmulator,
)
from sandbox.openai_script import Failure, Garbage, Hang, Reply, ToolCall

MODEL = "gpt-test"


class Verdict(BaseModel):
    answer: str
    confidence: float


class Lookup(BaseModel):
    query: str


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(server: OpenAIEmulator) -> Iterator[OpenAIEmulator]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(emulator: OpenAIEmulator) -> OpenAI:
    return OpenAI(base_url=emulator.base_url, api_key="sk-test", timeout=5.0, max_retries=0)


def ask(client: OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kwargs
    )


def test_dict_content_parses_as_structured_output(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A scripted dict comes back as JSON that ``parse`` turns into the pydantic model."""
    emulator.script(Reply({"answer": "yes", "confidence": 0.9}))
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "system", "content": "judge"}, {"role": "user", "content": "ok?"}],
        response_format=Verdict,
    )
    assert completion.choices[0].message.parsed == Verdict(answer="yes", confidence=0.9)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.system_fingerprint
    assert completion.choices[0].finish_reason == "stop"
    sent = emulator.requests()[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True


def test_json_schema_response_format_round_trip(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """The product's explicit json_schema request gets content that validates with the model."""
    emulator.script(Reply({"answer": "no", "confidence": 0.1}))
    schema = {"name": "verdict", "schema": Verdict.model_json_schema(), "strict": True}
    completion = ask(client, "ok?", response_format={"type": "json_schema", "json_schema": schema})
    content = completion.choices[0].message.content
    assert Verdict.model_validate(json.loads(content)) == Verdict(answer="no", confidence=0.1)


def test_usage_counts_words_unless_overridden(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Usage is a whitespace word count of prompt and reply, and scripts can override it."""
    emulator.script(
        Reply("four words of reply"), Reply("x", prompt_tokens=100, completion_tokens=7)
    )
    first = ask(client, "one two three").usage
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (3, 4, 7)
    second = ask(client, "one two three").usage
    assert (second.prompt_tokens, second.completion_tokens, second.total_tokens) == (100, 7, 107)


def test_streaming_content_arrives_in_pieces_with_usage(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    """A streamed reply comes in several content chunks, then a usage-only chunk."""
    text = "The deploy finished without errors on all three hosts."
    emulator.script(Reply(text))
    chunks = list(ask(client, "status?", stream=True, stream_options={"include_usage": True}))
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 3
    assert "".join(pieces) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)


def test_streaming_without_include_usage_has_no_usage(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    """Without include_usage no chunk carries usage and the last one has the finish reason."""
    emulator.script(Reply("short answer here"))
    chunks = list(ask(client, "hi", stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_calls_parse_into_client_types(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Scripted tool calls arrive as function tool calls with ids and JSON arguments."""
    emulator.script(
        Reply(
            tool_calls=[
                ToolCall("lookup", {"query": "runbook"}),
                {"id": "call_given", "function": {"name": "page", "arguments": '{"who":"oncall"}'}},
            ]
        )
    )
    completion = ask(client, "help")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    first, second = choice.message.tool_calls
    assert first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "lookup"
    assert json.loads(first.function.arguments) == {"query": "runbook"}
    assert (second.id, second.function.name) == ("call_given", "page")


def test_streamed_tool_calls_assemble_in_stream_helper(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    """The client's stream helper rebuilds streamed tool-call deltas into parsed arguments."""
    emulator.script(Reply(tool_calls=[ToolCall("Lookup", {"query": "disk full on db-1"})]))
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "help"}],
        tools=[openai.pydantic_function_tool(Lookup)],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert events.count("tool_calls.function.arguments.delta") > 1
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert call.function.parsed_arguments == Lookup(query="disk full on db-1")
    assert final.choices[0].finish_reason == "tool_calls"


def test_rate_limit_surfaces_with_retry_after(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A scripted 429 raises RateLimitError with the Retry-After header and OpenAI's body."""
    emulator.script(Failure(429, "slow down", retry_after=1.5))
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "hi")
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert caught.value.code == "rate_limit_exceeded"
    assert "slow down" in caught.value.message


def test_rate_limit_is_retried_by_client(emulator: OpenAIEmulator) -> None:
    """With its own retries on, the client waits Retry-After and gets the next reply."""
    emulator.script(Failure(429, "slow down", retry_after=0.05), Reply("done"))
    client = OpenAI(base_url=emulator.base_url, api_key="sk-test", timeout=5.0, max_retries=2)
    assert ask(client, "hi").choices[0].message.content == "done"
    assert len(emulator.requests()) == 2


def test_server_error(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A scripted 500 raises InternalServerError carrying the message."""
    emulator.script(Failure(500, "upstream exploded"))
    with pytest.raises(openai.InternalServerError, match="upstream exploded"):
        ask(client, "hi")


def test_hang_longer_than_client_timeout(emulator: OpenAIEmulator) -> None:
    """A hang past the client's timeout raises APITimeoutError and frees the server."""
    emulator.script(Hang(30))
    client = OpenAI(base_url=emulator.base_url, api_key="sk-test", timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hi")
    assert time.monotonic() - started < 2
    emulator.script(Reply("back"))
    assert ask(client, "again").choices[0].message.content == "back"


def test_short_hang_answers_504(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A hang the client outwaits ends in a 504 timeout error."""
    emulator.script(Hang(0.1))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "hi")
    assert caught.value.status_code == 504


def test_hanging_request_is_visible_while_it_hangs(emulator: OpenAIEmulator) -> None:
    """wait_for_requests returns while the request is still hanging, e.g. to kill a worker."""
    emulator.script(Hang(30))
    client = OpenAI(base_url=emulator.base_url, api_key="sk-test", timeout=0.5, max_retries=0)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            ask(client, "x")
        except openai.APIError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert emulator.wait_for_requests(1, match="x", timeout=1.0)[0]["model"] == MODEL
    assert caller.is_alive()
    caller.join()
    assert isinstance(outcome[0], openai.APITimeoutError)


def test_garbage_is_returned_verbatim(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Garbage content reaches the caller as-is and fails JSON parsing."""
    emulator.script(Garbage('{"answer": "yes", '))
    content = ask(client, "hi").choices[0].message.content
    assert content == '{"answer": "yes", '
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_specific_match_wins_and_order_is_kept(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Matching scripts beat generic ones registered earlier; equals are used in order."""
    emulator.script(Reply("generic"))
    emulator.script(Reply("invoice 1"), Reply("invoice 2"), match="invoice")

    def content(text: str) -> str:
        return str(ask(client, text).choices[0].message.content)

    assert content("pay the invoice") == "invoice 1"
    assert content("anything else") == "generic"
    assert content("another invoice") == "invoice 2"
    assert emulator.pending() == []


def test_repeat_reply_is_not_consumed(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A repeating reply answers every matching request."""
    emulator.script(Reply("again", repeat=True), match="ping")
    assert [ask(client, "ping").choices[0].message.content for _ in range(3)] == ["again"] * 3


def test_unmatched_request_is_a_loud_500(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A request no script matches gets HTTP 500 saying so, not a made-up answer."""
    emulator.script(Reply("only for refunds"), match="refund")
    with pytest.raises(openai.InternalServerError, match=NO_SCRIPT_MESSAGE):
        ask(client, "hello")


def test_default_reply(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A default reply answers unmatched requests until it is cleared."""
    emulator.set_default(Reply("fallback"))
    assert ask(client, "a").choices[0].message.content == "fallback"
    assert ask(client, "b").choices[0].message.content == "fallback"
    emulator.set_default(None)
    with pytest.raises(openai.InternalServerError):
        ask(client, "c")


def test_requests_are_logged_and_filterable(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Each request body is logged, and can be filtered by message text."""
    emulator.set_default(Reply("ok"))
    ask(client, "first question")
    ask(client, "second question", temperature=0)
    assert [r["messages"][0]["content"] for r in emulator.requests()] == [
        "first question",
        "second question",
    ]
    assert emulator.requests(match="second")[0]["temperature"] == 0
    emulator.reset()
    assert emulator.requests() == []


def test_empty_messages_is_bad_request(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """A request with no messages is rejected with 400 naming the parameter."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.param == "messages"


def test_unknown_path_gets_openai_error_shape(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """Routes the emulator lacks answer 404 in OpenAI's error shape."""
    with pytest.raises(openai.NotFoundError) as caught:
        client.post("/responses", body={}, cast_to=object)
    assert caught.value.type == "invalid_request_error"


def test_wrong_api_key_is_401() -> None:
    """With an api key configured, a different bearer token raises AuthenticationError."""
    with OpenAIEmulator(EmulatorConfig(api_key="sk-right")) as emulator:
        emulator.set_default(Reply("ok"))
        wrong = OpenAI(base_url=emulator.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            ask(wrong, "hi")
        right = OpenAI(base_url=emulator.base_url, api_key="sk-right", max_retries=0)
        assert ask(right, "hi").choices[0].message.content == "ok"


def test_models_list(emulator: OpenAIEmulator, client: OpenAI) -> None:
    """GET /v1/models lists the configured model names."""
    assert {model.id for model in client.models.list()} == {"emulator-chat", "emulator-embedding"}


def test_embeddings_are_deterministic_unit_vectors(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    """Embeddings are hash-seeded unit vectors, identical for identical text, in both encodings."""
    default = client.embeddings.create(model="emb", input=["alpha", "beta", "alpha"])
    floats = client.embeddings.create(model="emb", input="alpha", encoding_format="float")
    small = client.embeddings.create(model="emb", input="alpha", dimensions=8)
    alpha, beta, alpha_again = (item.embedding for item in default.data)
    assert len(alpha) == 256 and len(small.data[0].embedding) == 8
    assert math.isclose(math.fsum(v * v for v in alpha), 1.0, rel_tol=1e-5)
    assert alpha == alpha_again and alpha != beta
    assert floats.data[0].embedding == pytest.approx(alpha, abs=1e-6)
    assert default.usage.prompt_tokens == 3
    assert len(emulator.requests(path=EMBEDDINGS_PATH)) == 3
