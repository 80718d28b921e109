"""Asking the bot in Slack about something in the company's documents: the answer cites
its numbered sources, and a draft that cites what it was not given is not posted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rag.citations import NOT_FOUND_ANSWER
from rag.embeddings import LocalEmbedder
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.support.conversation import bot_replies, mention, unique_question, wait_for_answer
from tests.support.knowledge import knowledge_base
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]

REFUNDS = """# Refund policy

## Hardware

Customers may return hardware within 45 days of delivery for a full refund. The
return label is emailed by the support team once the ticket is approved.

## Subscriptions

Annual subscriptions are refunded pro rata for the unused months.
"""

SHIPPING = """# Shipping

We ship from Rotterdam to the EU, the UK and Norway. Orders placed before 14:00 CET
leave the warehouse the same day.
"""


@pytest.fixture
def handbook(
    stack: Stack, db: DB, database_url: str, embedder: LocalEmbedder, tmp_path: Path
) -> Iterator[str]:
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    files = {"refunds.md": REFUNDS, "shipping.md": SHIPPING}
    with knowledge_base(database_url, embedder, row["tenant_id"], tmp_path, files) as name:
        yield name


def sources_sent(llm: OpenAIEmulator, question: str) -> list[dict[str, Any]]:
    """The numbered sources the Draft step showed the model."""
    draft = [
        r
        for r in llm.requests(match=question)
        if r["response_format"]["json_schema"]["name"] == "Draft"
    ][-1]
    # The last user turn: "Context: {...}", a blank line, then the question.
    context = next(
        m["content"]
        for m in reversed(draft["messages"])
        if m["role"] == "user" and str(m["content"]).startswith("Context: ")
    ).split("\n\n", 1)[0]
    sources: list[dict[str, Any]] = json.loads(context.removeprefix("Context: "))["sources"]
    return sources


def test_an_answer_from_the_documents_ends_with_its_numbered_sources(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    question = unique_question("How long do customers have to return hardware?")
    plan = {"intent": "answer", "search_queries": ["hardware return window"], "tool_calls": []}
    answer = "Customers can return hardware within 45 days of delivery for a full refund [1]."
    llm.script(
        Reply(content=plan), Reply(content={"answer": answer, "citations": ["1"]}), match=question
    )

    reply = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    # The model was shown the matching passage as source [1], wrapped as untrusted data.
    first = sources_sent(llm, question)[0]
    assert first["number"] == 1 and "45 days" in first["text"]
    assert "Refund policy" in first["title"]
    # The person sees the answer, then the source it cites by number and title (with the
    # heading it sits under; a file has no link, a web page or Slack message would).
    assert reply.text == f"{answer}\n\n*Sources*\n[1] Refund policy &gt; Hardware"


def test_a_draft_citing_sources_it_was_not_given_is_never_posted(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    """Two drafts citing [7] (only a few sources exist): the person is told the answer was
    not found, not shown the made-up claim."""
    question = unique_question("Do we ship to Switzerland?")
    plan = {"intent": "answer", "search_queries": ["shipping countries"], "tool_calls": []}
    invented = {"answer": "Yes, we ship to Switzerland within two days [7].", "citations": ["7"]}
    llm.script(Reply(content=plan), Reply(content=invented, repeat=True), match=question)

    post = mention(stack.slack, question)
    reply = wait_for_answer(stack.slack, post.message.ts)

    assert reply.text == NOT_FOUND_ANSWER
    assert "Switzerland" not in "".join(m.text for m in bot_replies(stack.slack, post.message.ts))
    drafts = [
        r
        for r in llm.requests(match=question)
        if r["response_format"]["json_schema"]["name"] == "Draft"
    ]
    assert len(drafts) == 2
    # The second draft was told exactly what was wrong with the first.
    assert "[7]" in json.dumps(drafts[1]["messages"])
