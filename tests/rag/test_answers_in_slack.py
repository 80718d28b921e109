"""Asking the bot in Slack about something in the company's documents: the answer cites
its numbered sources, whether or not the model put the markers in itself; what no source
says is not posted, and a "not found" reply never lists sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.agent.answer_blocks import ACTION_FLAG_SOURCE, FEEDBACK_BLOCK
from connectors.slack.streaming import PREVIEW_SUFFIX, REPLACED_NOTE
from guardrails.injection import UNTRUSTED_TAG
from rag.citations import NOT_FOUND_ANSWER, SOURCES_HEADING, parse_sources_block
from rag.embeddings import LocalEmbedder
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Message
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


def draft_requests(llm: OpenAIEmulator, question: str) -> list[dict[str, Any]]:
    return [
        r
        for r in llm.requests(match=question)
        if r["response_format"]["json_schema"]["name"] == "Draft"
    ]


def sources_text(llm: OpenAIEmulator, question: str) -> str:
    """The text of the message that showed the Draft step its numbered sources."""
    draft = draft_requests(llm, question)[-1]
    return next(
        str(m["content"]) for m in draft["messages"] if SOURCES_HEADING in str(m["content"])
    )


def sources_sent(llm: OpenAIEmulator, question: str) -> list[dict[str, Any]]:
    """The numbered sources the Draft step showed the model."""
    return [
        {"number": n, "title": title, "text": text}
        for n, title, text in parse_sources_block(sources_text(llm, question))
    ]


def number_of(llm: OpenAIEmulator, question: str, words: str) -> int:
    """The number the model was given for the source containing `words`."""
    return next(s["number"] for s in sources_sent(llm, question) if words in s["text"])


def flag_buttons(reply: Message) -> list[str]:
    return [
        element["action_id"]
        for block in reply.blocks or []
        if block.get("block_id") == FEEDBACK_BLOCK
        for element in block["elements"]
        if element["action_id"].startswith(ACTION_FLAG_SOURCE)
    ]


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

    # The model was shown the matching passage as source [1], as plain numbered text
    # under a heading saying it is data, without the screen's wrapper tags to copy.
    first = sources_sent(llm, question)[0]
    assert first["number"] == 1 and "45 days" in first["text"]
    assert "Refund policy" in first["title"]
    assert "\n[1] Refund policy > Hardware\n" in sources_text(llm, question)
    assert UNTRUSTED_TAG not in sources_text(llm, question)
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
    assert flag_buttons(reply) == []
    assert "Switzerland" not in "".join(m.text for m in bot_replies(stack.slack, post.message.ts))
    drafts = [
        r
        for r in llm.requests(match=question)
        if r["response_format"]["json_schema"]["name"] == "Draft"
    ]
    assert len(drafts) == 2
    # The second draft was told exactly what was wrong with the first.
    assert "[7]" in json.dumps(drafts[1]["messages"])


def test_a_correct_answer_without_markers_is_posted_with_them_and_its_sources(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    """What a real 1.5B model wrote: the right facts, its citations listed, no [n] in the
    text. It is posted at once, each sentence cited by the source that says it."""
    question = unique_question("How long do customers have to return hardware?")
    plan = {"intent": "answer", "search_queries": ["hardware return window"], "tool_calls": []}
    answer = (
        "Customers can return hardware within 45 days of delivery for a full refund.\n"
        "The support team emails the return label once the ticket is approved."
    )
    llm.script(
        Reply(content=plan),
        Reply(content={"answer": answer, "citations": ["1", "2"]}),
        match=question,
    )

    reply = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    n = number_of(llm, question, "45 days")
    assert reply.text == (
        f"Customers can return hardware within 45 days of delivery for a full refund [{n}].\n"
        f"The support team emails the return label once the ticket is approved [{n}].\n\n"
        f"*Sources*\n[{n}] Refund policy &gt; Hardware"
    )
    assert flag_buttons(reply) == [f"{ACTION_FLAG_SOURCE}_{n}"]
    assert len(draft_requests(llm, question)) == 1  # not rejected for its missing markers


def test_a_sentence_with_a_number_no_source_has_is_left_out(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    question = unique_question("How do hardware refunds work?")
    plan = {"intent": "answer", "search_queries": ["hardware refund"], "tool_calls": []}
    answer = (
        "Customers can return hardware within 45 days of delivery [1]. "
        "The refund reaches the customer's account within 3 working days [1]."
    )
    llm.script(
        Reply(content=plan), Reply(content={"answer": answer, "citations": ["1"]}), match=question
    )

    post = mention(stack.slack, question)
    reply = wait_for_answer(stack.slack, post.message.ts)

    n = number_of(llm, question, "45 days")
    assert reply.text.startswith(
        f"Customers can return hardware within 45 days of delivery [{n}].\n\n*Sources*\n"
    )
    assert "3 working days" not in "".join(
        m.text for m in bot_replies(stack.slack, post.message.ts)
    )


def test_not_found_in_the_models_own_words_lists_no_sources(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    """A not-found reply that came with markers (as a small model writes it) is posted as
    the not-found answer, with no sources list and no "[n] is wrong" buttons."""
    question = unique_question("What is the office wifi password?")
    plan = {"intent": "answer", "search_queries": ["wifi password"], "tool_calls": []}
    reply_text = "Sorry, I couldn\u2019t find this in the knowledge base [1][2]!"
    llm.script(
        Reply(content=plan),
        Reply(content={"answer": reply_text, "citations": ["1", "2"]}),
        match=question,
    )

    reply = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    assert reply.text == NOT_FOUND_ANSWER
    assert flag_buttons(reply) == []
    assert len(draft_requests(llm, question)) == 1


def test_a_streamed_draft_without_markers_shows_line_by_line_as_it_will_be_posted(
    stack: Stack, llm: OpenAIEmulator, handbook: str
) -> None:
    """While a small model writes an unmarked answer, each finished line appears in the
    thread with the marker Verify gives it; the final answer continues what was shown,
    so nothing is replaced."""
    question = unique_question("What is the hardware return window?")
    plan = {"intent": "answer", "search_queries": ["hardware return window"], "tool_calls": []}
    answer = (
        "Customers can return hardware within 45 days of delivery for a full refund.\n"
        "The support team emails the return label once the ticket is approved."
    )
    llm.script(
        Reply(content=plan),
        Reply(content={"answer": answer, "citations": []}, piece_delay=0.05),
        match=question,
    )

    post = mention(stack.slack, question)
    reply = wait_for_answer(stack.slack, post.message.ts)

    n = number_of(llm, question, "45 days")
    first_line = (
        f"Customers can return hardware within 45 days of delivery for a full refund [{n}]."
    )
    assert reply.text.startswith(first_line) and REPLACED_NOTE not in reply.text
    # What people saw before the final write: the streamed pieces, or the placeholder's
    # preview edits where Slack does not stream.
    started = [
        c.params["markdown_text"]
        for c in stack.slack.calls("chat.startStream")
        if c.params.get("thread_ts") == post.message.ts
    ]
    appended = [
        c.params["markdown_text"]
        for c in stack.slack.calls("chat.appendStream")
        if c.params.get("ts") == reply.ts
    ]
    previews = [
        c.params["text"]
        for c in stack.slack.calls("chat.update")
        if c.params.get("ts") == reply.ts and c.params["text"].endswith(PREVIEW_SUFFIX)
    ]
    assert first_line in "".join(started + appended) or any(first_line in p for p in previews)
