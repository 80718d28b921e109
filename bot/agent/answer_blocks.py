"""The Block Kit of an answer: the text, then Slack's native 👍 / 👎 feedback buttons (a
`context_actions` block), then "Ask a human" and one "wrong or outdated" button per cited
source (an `actions` block of plain buttons, since the native block holds only feedback
and icon buttons).

The blocks are built with slack_sdk's typed Block Kit models, which check Slack's limits
as they are written out; what callers get (and what is stored and sent) is their JSON.
The message keeps its plain `text` too, for notifications and screen readers. The
listeners for these controls are in bot/intake/feedback_listeners.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextActionsBlock,
    ContextBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from core.db import Conn
from rag.citations import cited_numbers, is_not_found
from review.answer_feedback import Rating

BlockJson = dict[str, Any]  # a block as Slack takes it, and the database stores it

# The native feedback_buttons element: one action_id, the click's value says which side.
ACTION_RATE = "answer_rate"
# Plain 👍 / 👎 buttons of answers posted before the native element; still handled.
ACTION_RATE_UP = "answer_rate_up"
ACTION_RATE_DOWN = "answer_rate_down"
ACTION_ASK_HUMAN = "answer_ask_human"
# One button per cited source; action ids must be unique within their block.
ACTION_FLAG_SOURCE = "answer_flag_source"  # + "_<n>", n the source's number in the answer
RATING_BLOCK = "answer_rating"
FEEDBACK_BLOCK = "answer_feedback"

SECTION_CHARS = 3_000  # Slack's limit on a section block's text
MAX_FLAGGED_SOURCES = 5  # buttons for the first cited sources; answers rarely cite more


@dataclass(frozen=True)
class CitedSource:
    number: int  # as in the answer: [n]
    document_id: int
    title: str


def answer_blocks(text: str, run_id: int, sources: list[CitedSource]) -> list[BlockJson]:
    """The whole message: `text` in sections, then the feedback controls."""
    return as_json([*_sections(text), *_controls(run_id, sources, offer_handoff=True)])


def feedback_blocks(
    run_id: int, sources: list[CitedSource], *, offer_handoff: bool = True
) -> list[BlockJson]:
    """Only the controls, for a message whose text is already there (a streamed answer).
    Without `offer_handoff` there is no "Ask a human": a private answer has none, because
    the handoff's summary is posted in the thread, where everyone would read it."""
    return as_json(_controls(run_id, sources, offer_handoff=offer_handoff))


def note_block(text: str) -> BlockJson:
    """A line of small print (mrkdwn) under an answer's text: who shared it, for instance."""
    return ContextBlock(elements=[MarkdownTextObject(text=text)]).to_dict()


def as_json(blocks: Sequence[Block]) -> list[BlockJson]:
    """`blocks` as the JSON Slack takes (and the database stores); slack_sdk checks
    Slack's limits (lengths, counts) as it writes them."""
    return [block.to_dict() for block in blocks]


def _controls(run_id: int, sources: list[CitedSource], *, offer_handoff: bool) -> list[Block]:
    rating = ContextActionsBlock(
        block_id=RATING_BLOCK,
        elements=[
            FeedbackButtonsElement(
                action_id=ACTION_RATE,
                positive_button=FeedbackButtonObject(
                    text=PlainTextObject(text="👍", emoji=True),
                    accessibility_label="Helpful",  # read out instead of the bare emoji
                    value=rating_value("up", run_id),
                ),
                negative_button=FeedbackButtonObject(
                    text=PlainTextObject(text="👎", emoji=True),
                    accessibility_label="Not helpful",
                    value=rating_value("down", run_id),
                ),
            )
        ],
    )
    ask_human = ButtonElement(
        action_id=ACTION_ASK_HUMAN,
        text=PlainTextObject(text="🙋 Ask a human", emoji=True),
        value=str(run_id),
    )
    buttons = [ask_human] if offer_handoff else []
    buttons.extend(
        ButtonElement(
            action_id=f"{ACTION_FLAG_SOURCE}_{source.number}",
            text=PlainTextObject(text=f"⚠️ [{source.number}] is wrong or outdated", emoji=True),
            value=json.dumps({"run": run_id, "document": source.document_id}),
        )
        for source in sources[:MAX_FLAGGED_SOURCES]
    )
    if not buttons:
        return [rating]  # Slack refuses an actions block without elements
    return [rating, ActionsBlock(block_id=FEEDBACK_BLOCK, elements=buttons)]


def rating_value(rating: Rating, run_id: int) -> str:
    """What a feedback button sends when clicked: the rating and the run it rates."""
    return f"{rating}:{run_id}"


def parse_rating_value(value: str) -> tuple[Rating, int]:
    """(rating, run id) from a feedback button's value; ValueError if it is not one."""
    rating, _, run = value.partition(":")
    if rating == "up":
        return "up", int(run)
    if rating == "down":
        return "down", int(run)
    raise ValueError(f"not a rating: {value!r}")


def cited_sources(conn: Conn, tenant_id: int, run_id: int, text: str) -> list[CitedSource]:
    """The documents behind the [n] markers of the answer `text`: the passages the run's
    Retrieve step gave the Draft step (persisted in agent_steps), numbered from 1. Empty
    for a not-found answer, whatever markers it carries: it cites nothing."""
    if is_not_found(text):
        return []
    step = conn.execute(
        """SELECT output FROM agent_steps
           WHERE run_id = %s AND tenant_id = %s AND kind = 'retrieve'
           ORDER BY position DESC LIMIT 1""",
        (run_id, tenant_id),
    ).fetchone()
    passages = (step["output"].get("passages") if step else None) or []
    numbers = sorted(
        {int(n) for n in cited_numbers(text, []) if n.isdigit() and 1 <= int(n) <= len(passages)}
    )
    if not numbers:
        return []
    chunk_ids = [int(passages[n - 1]["id"]) for n in numbers]
    rows = conn.execute(
        """SELECT c.id, c.document_id, d.title FROM knowledge_chunks c
           JOIN knowledge_documents d ON d.id = c.document_id
           WHERE c.id = ANY (%s) AND c.tenant_id = %s""",
        (chunk_ids, tenant_id),
    ).fetchall()
    documents = {row["id"]: (row["document_id"], row["title"]) for row in rows}
    sources = []
    for number, chunk_id in zip(numbers, chunk_ids, strict=True):
        if chunk_id in documents:  # a chunk re-ingested away since cannot be flagged
            document_id, title = documents[chunk_id]
            sources.append(CitedSource(number, document_id, title))
    return sources


def blocks_for_answer(conn: Conn, tenant_id: int, run_id: int, text: str) -> list[BlockJson]:
    """`answer_blocks` for a run's final answer, with its cited sources looked up."""
    return answer_blocks(text, run_id, cited_sources(conn, tenant_id, run_id, text))


def _sections(text: str) -> list[Block]:
    """`text` as mrkdwn sections, split at line ends to fit Slack's per-section limit."""
    sections: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > SECTION_CHARS:  # one very long line: cut it
            if current:
                sections.append(current)
                current = ""
            sections.append(line[:SECTION_CHARS])
            line = line[SECTION_CHARS:]
        if len(current) + len(line) > SECTION_CHARS:
            sections.append(current)
            current = ""
        current += line
    if current.strip():
        sections.append(current)
    return [
        SectionBlock(text=MarkdownTextObject(text=part.rstrip("\n") or " "))
        for part in sections
        if part.strip()
    ]
