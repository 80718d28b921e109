"""Fitting a Plan or Draft prompt into the model's context (LLM_CONTEXT_TOKENS).

A prompt may take the context less the reply's cap for its purpose (LLM_MAX_TOKENS_*).
What always goes: the system prompt and the message to reply to. Then, while there is
room:

1. the newest turn of the thread (if the top passage still fits beside it), then the
   top-ranked passage;
2. older turns, newest first, until the history takes half the room left after the
   fixed parts (an older turn is left out before a newer one);
3. the other passages in rank order (a lower-ranked passage is left out before a higher
   one, so the ones kept keep the numbers [1], [2]... the answer's Sources list them by);
4. older turns again, with what room is left.

Tool results are always kept; their outputs are cut shorter (down to
MIN_TOOL_OUTPUT_CHARS) only when the prompt does not fit without any history or passage.
The whole prompt is counted again at the end (piece by piece sums are close, not exact),
and more is left out until it fits. A prompt whose system prompt and question alone do
not fit is sent as it is: the server's refusal then says so.

Sizes are counted by `StructuredLLM.count_tokens`: the server's tokenizer where it has
one, else a deliberate over-estimate (`core.llm.tokens`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bot.agent.prompts import MAX_TOOL_OUTPUT_CHARS, Message, Turn, only_rules_in_use
from core.knowledge import Passage
from core.llm.tokens import Count
from rag.citations import source_text

log = structlog.get_logger(__name__)

MIN_TOOL_OUTPUT_CHARS = 250  # a tool result is never cut shorter than this
HISTORY_SHARE = 0.5  # of the room left after the fixed parts, for the first pass of history

# The prompt with these turns, passages and tool outputs cut to this many characters.
Build = Callable[[list[Turn], list[Passage], int], list[Message]]
Counter = Callable[[list[Message]], Count]


@dataclass(frozen=True)
class Fitted:
    messages: list[Message]
    count: Count
    passages: int  # kept: the first this many, numbered [1]..[n]
    trimmed: dict[str, int]  # what was left out or cut, for the run's steps

    def step_fields(self) -> dict[str, Any]:
        """What the Plan or Draft step stores beside the model's reply."""
        return {
            "prompt_tokens": self.count.tokens,
            "counted_with": self.count.method,
            "trimmed": self.trimmed,
        }


def fit(
    build: Build,
    history: Sequence[Turn],
    passages: Sequence[Passage],
    *,
    room: int,
    count: Counter,
) -> Fitted:
    """The prompt ``build`` makes with as much of ``history`` and ``passages`` as fits in
    ``room`` tokens, as the module describes."""
    turns, found = list(history), list(passages)
    cap = MAX_TOOL_OUTPUT_CHARS
    base = count(build([], [], cap))
    while base.tokens > room and cap > MIN_TOOL_OUTPUT_CHARS:
        shorter = max(MIN_TOOL_OUTPUT_CHARS, cap // 2)
        trial = count(build([], [], shorter))
        if trial.tokens >= base.tokens:
            break  # nothing was cut: the tool results are not what is too long
        cap, base = shorter, trial

    def size(text: str) -> int:
        return count([{"role": "user", "content": text}]).tokens

    free = room - base.tokens
    history_share = int(free * HISTORY_SHARE) if found else free
    kept_turns = kept_passages = history_spent = 0

    def take_turns(most: int, limit: int) -> None:
        """The next older turns, up to ``most`` of them, while history has spent at most
        ``limit`` tokens; stops at the first that does not fit (older ones never jump
        ahead of a newer one left out)."""
        nonlocal free, kept_turns, history_spent
        for _ in range(most):
            if kept_turns >= len(turns):
                return
            cost = size(turns[-1 - kept_turns]["content"])
            if cost > free or history_spent + cost > limit:
                return
            free, history_spent, kept_turns = free - cost, history_spent + cost, kept_turns + 1

    def take_passages(most: int) -> None:
        """The next lower-ranked passages, up to ``most``, while they fit."""
        nonlocal free, kept_passages
        for _ in range(most):
            if kept_passages >= len(found):
                return
            cost = size(_numbered(kept_passages + 1, found[kept_passages]))
            if cost > free:
                return
            free, kept_passages = free - cost, kept_passages + 1

    # The newest turn and the top passage before anything else; the turn only if the
    # passage still fits beside it.
    top = size(_numbered(1, found[0])) if found else 0
    take_turns(1, free - top if top <= free else free)
    take_passages(1)
    take_turns(len(turns), history_share)
    take_passages(len(found))
    take_turns(len(turns), room)

    while True:
        kept = turns[len(turns) - kept_turns :] if kept_turns else []
        messages = build(kept, found[:kept_passages], cap)
        total = count(messages)
        if total.tokens <= room or not (kept_turns or kept_passages):
            break
        # Least missed first: the oldest turn, a low-ranked passage, then the last ones.
        if kept_turns > 1:
            kept_turns -= 1
        elif kept_passages > 1:
            kept_passages -= 1
        elif kept_turns:
            kept_turns -= 1
        else:
            kept_passages -= 1
    unused_rules_dropped = only_rules_in_use(messages)
    if unused_rules_dropped != messages:
        messages, total = unused_rules_dropped, count(unused_rules_dropped)
    if total.tokens > room:
        log.warning("prompt.over_budget", tokens=total.tokens, room=room)
    trimmed = {
        "history_turns": len(turns) - kept_turns,
        "passages": len(found) - kept_passages,
    }
    if cap < MAX_TOOL_OUTPUT_CHARS:
        trimmed["tool_output_chars"] = cap
    return Fitted(
        messages,
        total,
        kept_passages,
        {name: value for name, value in trimmed.items() if value},
    )


def _numbered(number: int, passage: Passage) -> str:
    """About the passage's text in the numbered sources block (rag/citations.py)."""
    title, text = source_text(passage)
    return f"[{number}] {title}\n{text}"
