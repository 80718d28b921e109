"""Tool turns: native tool calling where it works, JSON turns where it does not, and tool
arguments held to each tool's schema. Against the OpenAI emulator over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from core.llm.errors import MalformedOutput
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import StructuredLLM
from core.llm.tools import ToolSpec, tool_result_message
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Failure, Refusal, Reply, ToolCall

MARKER = "[tool-turn-tests]"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You help the sales team."},
    {"role": "user", "content": f"Who is our contact at Acme? {MARKER}"},
]
SEARCH = ToolSpec(
    "search_contacts",
    "Find CRM contacts by name or company.",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "minLength": 1}},
        "required": ["query"],
        "additionalProperties": False,
    },
)
DEAL = ToolSpec(
    "get_deal",
    "Read one deal.",
    {"type": "object", "properties": {"deal_id": {"type": "string"}}, "required": ["deal_id"]},
)
TOOLS = [SEARCH, DEAL]


def make_llm(emulator: OpenAIEmulator, model: str) -> StructuredLLM:
    chain = build_chain(
        [("primary", emulator.base_url, "k", model)],
        timeout=5.0,
        max_retries=0,
        circuit_failures=100,
        circuit_reset=60.0,
    )
    return StructuredLLM(chain, malformed_retries=1)


def test_native_tool_calls_come_back_as_checked_requests(llm: OpenAIEmulator) -> None:
    llm.script(Reply(tool_calls=[ToolCall("search_contacts", {"query": "Acme"})]), match=MARKER)
    calls: list[CallRecord] = []
    turn = make_llm(llm, "native-model").tool_turn(MESSAGES, TOOLS, on_call=calls.append)
    assert turn.native
    assert [(c.name, c.arguments) for c in turn.calls] == [("search_contacts", {"query": "Acme"})]
    assert [c.outcome for c in calls] == ["ok"]
    (sent,) = llm.requests(MARKER)
    assert [t["function"]["name"] for t in sent["tools"]] == ["search_contacts", "get_deal"]
    assert sent["tool_choice"] == "auto"
    assert sent["max_tokens"] == 768  # the tool_turn purpose's cap
    assert "response_format" not in sent


def test_a_plain_answer_is_text_with_no_calls(llm: OpenAIEmulator) -> None:
    llm.script(Reply(content="Jane Doe is the contact at Acme."), match=MARKER)
    turn = make_llm(llm, "native-text").tool_turn(MESSAGES, TOOLS, on_call=lambda _c: None)
    assert turn.text == "Jane Doe is the contact at Acme."
    assert turn.calls == []


def test_a_model_writing_its_call_as_fenced_json_is_understood_and_given_json_turns(
    llm: OpenAIEmulator,
) -> None:
    """Qwen2.5-Coder 1.5B behind llama-server: offered native tools, it writes the call as
    a fenced JSON block. The call is taken, and the next turn is a JSON-schema turn whose
    history is plain alternating turns."""
    model = make_llm(llm, "fenced-json")
    llm.script(
        Reply(content='```json\n{"name": "search_contacts", "arguments": {"query": "Acme"}}\n```'),
        Reply(
            content={
                "reply": "",
                "tool_calls": [{"name": "get_deal", "arguments": {"deal_id": "D-7"}}],
            }
        ),
        match=MARKER,
    )
    first = model.tool_turn(MESSAGES, TOOLS, on_call=lambda _c: None)
    assert not first.native
    assert [(c.name, c.arguments) for c in first.calls] == [("search_contacts", {"query": "Acme"})]

    history = [
        *MESSAGES,
        first.assistant_message(),
        tool_result_message(first.calls[0], '{"name": "Jane Doe", "deal": "D-7"}'),
    ]
    second = model.tool_turn(history, TOOLS, on_call=lambda _c: None)
    assert [(c.name, c.arguments) for c in second.calls] == [("get_deal", {"deal_id": "D-7"})]

    sent = llm.requests(MARKER)[1]
    assert "tools" not in sent
    assert sent["response_format"]["json_schema"]["name"] == "ToolTurn"
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "search_contacts" in sent["messages"][0]["content"]  # the tools, described
    assert "Result of search_contacts" in sent["messages"][3]["content"]


def test_a_server_refusing_tools_gets_json_turns_at_once(llm: OpenAIEmulator) -> None:
    llm.refuse(
        Refusal("no-tools", "tools", None, Failure(400, "'tools' is not supported by this model"))
    )
    llm.script(
        Reply(
            content={
                "reply": "",
                "tool_calls": [{"name": "search_contacts", "arguments": {"query": "Acme"}}],
            }
        ),
        match=MARKER,
    )
    calls: list[CallRecord] = []
    turn = make_llm(llm, "no-tools").tool_turn(MESSAGES, TOOLS, on_call=calls.append)
    assert [(c.name, c.arguments) for c in turn.calls] == [("search_contacts", {"query": "Acme"})]
    assert [c.outcome for c in calls] == ["rejected", "ok"]
    assert ["tools" in body for body in llm.requests(MARKER)] == [True, False]


def test_arguments_that_do_not_fit_are_sent_back_once(llm: OpenAIEmulator) -> None:
    """An unquoted placeholder or a wrong type is told to the model, which tries again."""
    llm.script(
        Reply(tool_calls=[ToolCall("search_contacts", '{"query": [<EMAIL_1>]}')]),
        Reply(tool_calls=[ToolCall("search_contacts", {"query": "<EMAIL_1>"})]),
        match=MARKER,
    )
    calls: list[CallRecord] = []
    turn = make_llm(llm, "sloppy").tool_turn(MESSAGES, TOOLS, on_call=calls.append)
    assert [(c.name, c.arguments) for c in turn.calls] == [
        ("search_contacts", {"query": "<EMAIL_1>"})
    ]
    assert [c.outcome for c in calls] == ["malformed", "ok"]
    retry = llm.requests(MARKER)[1]["messages"][-1]["content"]
    assert "the arguments of search_contacts are not a JSON object" in retry


def test_arguments_that_keep_failing_their_schema_give_up(llm: OpenAIEmulator) -> None:
    llm.script(
        Reply(tool_calls=[ToolCall("get_deal", {"id": 7})], repeat=True),
        match=MARKER,
    )
    with pytest.raises(MalformedOutput):
        make_llm(llm, "stubborn").tool_turn(MESSAGES, TOOLS, on_call=lambda _c: None)
    retry = llm.requests(MARKER)[1]["messages"][-1]["content"]
    assert "do not fit its schema" in retry
    assert "'deal_id' is a required property" in retry


def test_an_empty_native_reply_is_asked_again_as_a_json_turn(llm: OpenAIEmulator) -> None:
    """llama-cpp-python's chatml-function-calling answers a tools request with nothing:
    the same turn is asked again at once as a JSON turn, and stays one."""
    llm.script(
        Reply(content=""),
        Reply(
            content={
                "reply": "",
                "tool_calls": [{"name": "search_contacts", "arguments": {"query": "Acme"}}],
            }
        ),
        Reply(content={"reply": "Jane Doe.", "tool_calls": []}),
        match=MARKER,
    )
    model = make_llm(llm, "empty-native")
    calls: list[CallRecord] = []
    turn = model.tool_turn(MESSAGES, TOOLS, on_call=calls.append)
    assert [(c.name, c.arguments) for c in turn.calls] == [("search_contacts", {"query": "Acme"})]
    assert [c.outcome for c in calls] == ["malformed", "ok"]
    again = model.tool_turn(MESSAGES, TOOLS, on_call=lambda _c: None)
    assert again.text == "Jane Doe." and not again.native
    assert ["tools" in body for body in llm.requests(MARKER)] == [True, False, False]
    # The JSON turn asks for the same conversation, not a complaint about the empty one.
    assert llm.requests(MARKER)[1]["messages"][-1]["content"] == MESSAGES[-1]["content"]
