"""Fitting a Draft prompt into a small context (bot/agent/budget.py), counted with the
estimate the product uses when the server has no tokenizer."""

from __future__ import annotations

from bot.agent import budget, prompts
from core.knowledge import Passage
from core.llm.tokens import TokenCounter
from core.schemas import Plan

ROOM = 1_900  # tokens: a 3,000-token context less a draft's 1,024-token reply, about
PLAN = Plan(intent="answer", search_queries=[], tool_calls=[])
QUESTION = "How long do customers have to return hardware?"
PASSAGES = [
    Passage(str(n), f"Policy {n}", f"Passage {n} says something about returns. " * 12)
    for n in range(1, 7)
]


def build(turns: list[prompts.Turn], shown: list[Passage], cap: int) -> list[prompts.Message]:
    return prompts.draft_messages(turns, QUESTION, PLAN, shown, [], [], max_output_chars=cap)


def fitted(history: list[prompts.Turn]) -> budget.Fitted:
    return budget.fit(build, history, PASSAGES, room=ROOM, count=TokenCounter().count_messages)


def tokens(text: str) -> int:
    return TokenCounter().count_messages([{"role": "user", "content": text}]).tokens


def sent(result: budget.Fitted) -> str:
    return "\n".join(str(m["content"]) for m in result.messages)


def test_a_huge_last_message_does_not_push_out_the_top_passage() -> None:
    """A pasted log as the thread's last message, that would fit alone but not beside the
    top passage: the top passage stays as [1], and the log is what is left out."""
    fixed = TokenCounter().count_messages(build([], [], prompts.MAX_TOOL_OUTPUT_CHARS)).tokens
    top = tokens(f"[1] Policy 1\n{PASSAGES[0].text}")
    log = "LOG " + "x" * ((ROOM - fixed - top // 2) * 3 - 40)
    assert fixed + tokens(log) <= ROOM < fixed + tokens(log) + top
    history: list[prompts.Turn] = [
        {"role": "user", "content": "Earlier: the parcel came back damaged."},
        {"role": "user", "content": log},
    ]

    result = fitted(history)

    assert result.count.tokens <= ROOM
    assert "[1] Policy 1\nPassage 1 says" in sent(result)
    assert "LOG x" not in sent(result)
    assert result.trimmed["history_turns"] == 2  # an older turn never jumps ahead
    assert result.passages == len(PASSAGES) - result.trimmed.get("passages", 0)


def test_older_turns_go_first_and_kept_passages_keep_their_numbers() -> None:
    """A long thread: the newest turns are kept, the oldest left out; passages are kept
    from the top, numbered [1]..[n] as the Sources will be."""
    history: list[prompts.Turn] = [
        {"role": "user", "content": f"Turn {n}: " + "we talked about the order. " * 20}
        for n in range(1, 11)
    ]

    result = fitted(history)

    text = sent(result)
    assert result.count.tokens <= ROOM
    assert "Turn 10:" in text and "Turn 1:" not in text
    kept = 10 - result.trimmed["history_turns"]
    assert all(f"Turn {n}:" in text for n in range(11 - kept, 11))
    assert result.passages >= 1
    assert all(f"[{n}] Policy {n}" in text for n in range(1, result.passages + 1))
    assert f"Policy {result.passages + 1}" not in text
