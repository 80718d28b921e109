"""The product's summariser against the sandbox's demo model over HTTP: the reply it
accepts, and a read too long for the model's context summarised in pieces (map), then
merged (reduce), with each item still citing the right message."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from bot.summaries.reading import ChannelMessage
from bot.summaries.summarise import MESSAGES_HEADING, PARTIALS_HEADING, summarise
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import StructuredLLM
from sandbox.demo_model import DEMO_MODEL_NAME, demo_model_server
from sandbox.openai_emulator import OpenAIEmulator

API_KEY = "demo-summary-key"
MESSAGES = [
    ChannelMessage("1765000000.000100", "U0ALICE", "Morning all, the release is this week."),
    ChannelMessage("1765000060.000100", "U0BOB", "Should we freeze the API on Wednesday?"),
    ChannelMessage("1765000120.000100", "U0ALICE", "Agreed, we freeze the API on Wednesday."),
    ChannelMessage("1765000180.000100", "U0CAROL", "I'll write the migration guide."),
    ChannelMessage("1765000240.000100", "U0BOB", "Lunch was great today, thanks for it."),
    ChannelMessage("1765000300.000100", "U0CAROL", "Who owns the status page on launch day?"),
    ChannelMessage("1765000360.000100", "U0ALICE", "Can you update the changelog, Bob?"),
    ChannelMessage("1765000420.000100", "U0BOB", "We decided to keep the old endpoint a month."),
]


@pytest.fixture(scope="module")
def demo_model() -> Iterator[OpenAIEmulator]:
    with demo_model_server(API_KEY) as server:
        yield server


def model(server: OpenAIEmulator, context_tokens: int) -> StructuredLLM:
    chain = build_chain(
        [("demo", server.base_url, API_KEY, DEMO_MODEL_NAME)],
        timeout=5.0,
        max_retries=0,
        circuit_failures=5,
        circuit_reset=60.0,
    )
    return StructuredLLM(chain, malformed_retries=0, context_tokens=context_tokens)


def run(
    server: OpenAIEmulator, context_tokens: int, messages: list[ChannelMessage] = MESSAGES
) -> tuple[object, list[CallRecord]]:
    calls: list[CallRecord] = []
    result = summarise(
        model(server, context_tokens),
        messages,
        zone=ZoneInfo("UTC"),
        redact=lambda text: text,
        on_call=calls.append,
    )
    return result, calls


def test_a_short_read_is_one_call_and_sorted_sensibly(demo_model: OpenAIEmulator) -> None:
    demo_model.reset()
    result, calls = run(demo_model, 8_192)
    assert [c.outcome for c in calls] == ["ok"]
    decisions = {item.text: item.messages for item in result.decisions}  # type: ignore[attr-defined]
    assert decisions == {
        "<@U0ALICE>: Agreed, we freeze the API on Wednesday.": [3],
        "<@U0BOB>: We decided to keep the old endpoint a month.": [8],
    }
    questions = [i.messages for i in result.open_questions]  # type: ignore[attr-defined]
    assert questions == [[2], [6]]
    actions = [i.messages for i in result.action_items]  # type: ignore[attr-defined]
    assert actions == [[4], [7]]


def test_a_read_beyond_the_context_is_summarised_in_pieces_then_merged(
    demo_model: OpenAIEmulator,
) -> None:
    demo_model.reset()
    # Room for about 600 characters of messages per call: three or more pieces.
    padded = [
        ChannelMessage(m.ts, m.user, f"{m.text} Some more words about it, said at length.")
        for m in MESSAGES
    ]
    result, calls = run(demo_model, 1_024 + 900 + 200, padded)
    bodies = demo_model.requests()
    maps = [b for b in bodies if MESSAGES_HEADING in str(b["messages"])]
    merges = [b for b in bodies if PARTIALS_HEADING in str(b["messages"])]
    assert len(maps) >= 2 and len(merges) >= 1
    assert len(calls) == len(maps) + len(merges)
    # Every message went to exactly one piece, numbered as in the whole read.
    sent = "".join(str(b["messages"]) for b in maps)
    for number in range(1, len(MESSAGES) + 1):
        assert sent.count(f"[{number}] <@") == 1
    cited = sorted(n for i in result.decisions for n in i.messages)  # type: ignore[attr-defined]
    assert cited == [3, 8]
