"""The Block Kit of an answer in its thread: the text, then 👍 / 👎 / "Ask a human", then
one "wrong or outdated" button per cited source.

Why an `actions` block of plain buttons rather than Slack's `context_actions` block with
a `feedback_buttons` element: plain buttons render in every Slack client and in the
sandbox's web page, and the Slack emulator clicks them like any other button; the native
feedback control is newer and neither can show it yet. The message keeps its plain
`text` too, for notifications and screen readers. The listeners for these buttons are in
bot/intake/feedback_listeners.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.db import Conn
from rag.citations import cited_numbers

Block = dict[str, Any]

ACTION_RATE_UP = "answer_rate_up"
ACTION_RATE_DOWN = "answer_rate_down"
ACTION_ASK_HUMAN = "answer_ask_human"
# One button per cited source; action ids must be unique within their block.
ACTION_FLAG_SOURCE = "answer_flag_source"  # + "_<n>", n the source's number in the answer
FEEDBACK_BLOCK = "answer_feedback"
SOURCES_BLOCK = "answer_sources"

SECTION_CHARS = 3_000  # Slack's limit on a section block's text
MAX_FLAGGED_SOURCES = 5  # buttons for the first cited sources; answers rarely cite more


@dataclass(frozen=True)
class CitedSource:
    number: int  # as in the answer: [n]
    document_id: int
    title: str


def answer_blocks(text: str, run_id: int, sources: list[CitedSource]) -> list[Block]:
    """The whole message: `text` in sections, then the feedback controls."""
    return [*_sections(text), *feedback_blocks(run_id, sources)]


def feedback_blocks(run_id: int, sources: list[CitedSource]) -> list[Block]:
    """Only the controls, for a message whose text is already there (a streamed answer)."""
    blocks: list[Block] = [
        {
            "type": "actions",
            "block_id": FEEDBACK_BLOCK,
            "elements": [
                _button(ACTION_RATE_UP, "👍 Helpful", str(run_id)),
                _button(ACTION_RATE_DOWN, "👎 Not helpful", str(run_id)),
                _button(ACTION_ASK_HUMAN, "🙋 Ask a human", str(run_id)),
            ],
        }
    ]
    flaggable = sources[:MAX_FLAGGED_SOURCES]
    if flaggable:
        blocks.append(
            {
                "type": "actions",
                "block_id": SOURCES_BLOCK,
                "elements": [
                    _button(
                        f"{ACTION_FLAG_SOURCE}_{source.number}",
                        f"⚠️ [{source.number}] is wrong or outdated",
                        json.dumps({"run": run_id, "document": source.document_id}),
                    )
                    for source in flaggable
                ],
            }
        )
    return blocks


def cited_sources(conn: Conn, tenant_id: int, run_id: int, text: str) -> list[CitedSource]:
    """The documents behind the [n] markers of the answer `text`: the passages the run's
    Retrieve step gave the Draft step (persisted in agent_steps), numbered from 1."""
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


def blocks_for_answer(conn: Conn, tenant_id: int, run_id: int, text: str) -> list[Block]:
    """`answer_blocks` for a run's final answer, with its cited sources looked up."""
    return answer_blocks(text, run_id, cited_sources(conn, tenant_id, run_id, text))


def _button(action_id: str, label: str, value: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
    }


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
        {"type": "section", "text": {"type": "mrkdwn", "text": part.rstrip("\n") or " "}}
        for part in sections
        if part.strip()
    ]
