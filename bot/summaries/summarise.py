"""Asking the model for a summary: decisions, open questions and action items, each
citing the numbered messages it draws on.

The messages go to the model as data (wrapped as untrusted content, PII hidden as in
every prompt), numbered from 1 across the whole read so a citation means the same
message in every piece. A read too long for the model's context (LLM_CONTEXT_TOKENS) is
summarised in pieces that fit (map), then the pieces' summaries are summarised into one
(reduce), again in pieces if they do not fit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from bot.summaries.reading import ChannelMessage
from core.llm.providers import CallRecord
from core.llm.structured import StructuredLLM
from core.llm.tokens import CHARS_PER_TOKEN
from guardrails.facade import PLACEHOLDER_RULE
from guardrails.injection import UNTRUSTED_CONTENT_RULE, wrap_untrusted

PURPOSE = "draft"  # the reply's cap: a summary is about as long as an answer
PROMPT_OVERHEAD_TOKENS = 900  # the system prompt, the schema and the turn's framing
MAX_MESSAGE_CHARS = 1_500  # one message's text in the prompt; longer ones are cut
MESSAGES_HEADING = "Messages to summarise:"
PARTIALS_HEADING = "Summaries of consecutive parts of the conversation, to merge:"

SUMMARY_SYSTEM = (
    "You summarise Slack conversations for someone catching up. From the numbered "
    "messages, list the decisions made, the questions still open, and the action items "
    "(who does what). Each item is one short sentence and cites the numbers of the "
    "messages it is drawn from. Name people exactly as they are written, like <@U123>. "
    "Leave a list empty when there is nothing for it; never invent. overview: one or two "
    "sentences on what the conversation was about. Reply with JSON only. "
    f"{PLACEHOLDER_RULE} {UNTRUSTED_CONTENT_RULE}"
)
MERGE_SYSTEM = (
    "You merge summaries of consecutive parts of one Slack conversation into one summary "
    "for someone catching up. Keep every decision, open question and action item that "
    "still stands (a later part may settle an earlier question: then it is a decision), "
    "merge duplicates, and keep each item's message numbers. Name people exactly as they "
    "are written, like <@U123>. Reply with JSON only. "
    f"{PLACEHOLDER_RULE} {UNTRUSTED_CONTENT_RULE}"
)


class SummaryItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="One short sentence")
    messages: list[int] = Field(description="The numbers of the messages it draws on")


class ChannelSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overview: str
    decisions: list[SummaryItem]
    open_questions: list[SummaryItem]
    action_items: list[SummaryItem]


Redact = Callable[[str], str]  # PII hidden from the model, as in every prompt


def summarise(
    llm: StructuredLLM,
    messages: Sequence[ChannelMessage],
    *,
    zone: ZoneInfo,
    redact: Redact,
    on_call: Callable[[CallRecord], None],
) -> ChannelSummary:
    """The summary of ``messages`` (numbered from 1 in this order), in one call when they
    fit the model's context, else map then reduce."""
    lines = [_line(i, m, zone, redact) for i, m in enumerate(messages, start=1)]
    budget = _budget_chars(llm)
    chunks = _chunks(lines, budget)
    partials = [
        llm.ask(
            ChannelSummary,
            _turns(SUMMARY_SYSTEM, MESSAGES_HEADING, "\n".join(chunk)),
            on_call=on_call,
            purpose=PURPOSE,
        )
        for chunk in chunks
    ]
    while len(partials) > 1:
        texts = [p.model_dump_json() for p in partials]
        groups = _chunks(texts, budget)
        if len(groups) == len(texts):  # none fit together: merge two at a time all the same
            groups = [texts[i : i + 2] for i in range(0, len(texts), 2)]
        partials = [
            llm.ask(
                ChannelSummary,
                _turns(MERGE_SYSTEM, PARTIALS_HEADING, "\n".join(group)),
                on_call=on_call,
                purpose=PURPOSE,
            )
            for group in groups
        ]
    return _cited_only(partials[0], len(messages))


def _budget_chars(llm: StructuredLLM) -> int:
    room = llm.prompt_room(PURPOSE) - PROMPT_OVERHEAD_TOKENS
    return max(room, 200) * CHARS_PER_TOKEN


def _chunks(lines: Sequence[str], budget: int) -> list[list[str]]:
    """``lines`` in order, in runs whose text fits ``budget`` characters (a line longer
    than the budget is a run of its own)."""
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and size + len(line) + 1 > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    return [chunk for chunk in chunks if chunk]


def _line(index: int, message: ChannelMessage, zone: ZoneInfo, redact: Redact) -> str:
    when = datetime.fromtimestamp(float(message.ts), UTC).astimezone(zone)
    author = f"<@{message.user}>" if message.user else "someone"
    text = redact(message.text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "…"
    replies = f" ({message.reply_count} replies in its thread)" if message.reply_count else ""
    reply = "  ↳ in the thread above, " if message.thread_ts else ""
    return f"[{index}] {reply}{author} ({when:%a %d %b %H:%M}){replies}: {text}"


def _turns(system: str, heading: str, body: str) -> list[dict[str, str]]:
    data = wrap_untrusted("slack messages", "Slack", body)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{heading}\n{data}"},
    ]


def _cited_only(summary: ChannelSummary, count: int) -> ChannelSummary:
    """The summary with citations of messages that do not exist dropped."""

    def fix(items: list[SummaryItem]) -> list[SummaryItem]:
        return [
            SummaryItem(
                text=item.text.strip(),
                messages=sorted({n for n in item.messages if 1 <= n <= count}),
            )
            for item in items
            if item.text.strip()
        ]

    return ChannelSummary(
        overview=summary.overview.strip(),
        decisions=fix(summary.decisions),
        open_questions=fix(summary.open_questions),
        action_items=fix(summary.action_items),
    )
