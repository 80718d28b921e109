"""Prompts fitted into the model's context (LLM_CONTEXT_TOKENS): a long thread and many long
passages with a small context. The request the model gets fits, keeps the newest turn
and the top passage, and the answer still cites its source by the number it was shown;
the run's steps say what was left out. Counted with the server's tokenizer when it has
llama-server's /tokenize, else with a safe estimate.

The run is in-process (with a context this small) against real Postgres, the Slack
emulator, the real retriever over ingested documents, and the LLM emulator."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.agent.run_request import WorkerDeps, run_request
from core.db import open_pool
from core.llm.structured import StructuredLLM
from core.settings import load_settings
from rag.citations import SOURCES_HEADING, parse_sources_block
from rag.embeddings import LocalEmbedder
from rag.wiring import retriever_from_settings
from sandbox.openai_emulator import TOKENIZE_PATH, OpenAIEmulator, emulated_tokens
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.bot.agent.test_run_request import DB, guardrails_for
from tests.support.conversation import GENERAL, bot_replies
from tests.support.knowledge import knowledge_base
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

CONTEXT_TOKENS = 3_000
DRAFT_MAX_TOKENS = 1_024  # LLM_MAX_TOKENS_DRAFT's default
PLAN_MAX_TOKENS = 768
TURNS = 8

REFUNDS = """# Refund policy

## Hardware returns

Customers may return hardware within 45 days of delivery for a full refund. The return
label for the hardware is emailed by the support team once the refund ticket is approved,
and the refund reaches the customer's card within five working days of the parcel's
arrival at the Rotterdam warehouse.
"""


def filler_doc(topic: str) -> str:
    """A long document that also talks about refunds, so searches find it too."""
    paragraph = (
        f"The {topic} refund rules differ from hardware. A {topic} refund is decided by the "
        f"{topic} team after the customer writes in, and it is paid as store credit unless "
        f"the contract says otherwise. Ask the {topic} desk before promising anything, and "
        f"note the customer's order number, the date and the reason in the ticket. "
    )
    return f"# {topic.title()} refunds\n\n{paragraph * 2}\n\n## More\n\n{paragraph * 2}\n"


TOPICS = ("software", "training", "consulting", "shipping", "warranty", "subscription")


@pytest.fixture
def handbook(
    stack: Stack, db: DB, database_url: str, embedder: LocalEmbedder, tmp_path: Path
) -> Iterator[int]:
    """The sandbox tenant's knowledge: the refund policy and long documents beside it."""
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    files = {"refunds.md": REFUNDS} | {f"{t}.md": filler_doc(t) for t in TOPICS}
    with knowledge_base(database_url, embedder, row["tenant_id"], tmp_path, files):
        yield row["tenant_id"]


def long_turn(label: str) -> str:
    return (
        f"{label}: "
        + (
            "We went through the order history again and the customer keeps asking about the "
            "parcel, the label, the card and what the warehouse said on the phone last week. "
        )
        * 8
    )


def threaded_request(db: DB, stack: Stack, tenant_id: int, question: str) -> tuple[int, str]:
    """A thread with TURNS long messages, then the question mentioned in it, stored as the
    listener stores a request (not queued: it is run in this process)."""
    workspace = stack.slack.workspace
    parent = workspace.post_message(GENERAL, user="U0REQUESTER", text=long_turn("OLDEST"))
    for n in range(1, TURNS - 1):
        workspace.post_message(
            GENERAL, user="U0REQUESTER", text=long_turn(f"turn {n}"), thread_ts=parent.ts
        )
    workspace.post_message(
        GENERAL, user="U0REQUESTER", text=long_turn("NEWEST"), thread_ts=parent.ts
    )
    text = f"<@{stack.slack.bot_user_id}> {question}"
    stored = store_mention(db, stack, text, thread_ts=parent.ts, tenant_id=tenant_id)
    return stored.request_id, parent.ts


def run_small_context(
    stack: Stack,
    llm: OpenAIEmulator,
    embedder: LocalEmbedder,
    database_url: str,
    request_id: int,
    malformed_retries: int = 0,
) -> None:
    settings = load_settings(
        database_url=database_url, slack_signing_secret="test-secret", rag_rerank=False
    )
    pool = open_pool(database_url, max_size=2)
    try:
        deps: WorkerDeps = in_process_deps(
            stack, llm, pool, guardrails_for(database_url, pool), max_steps=8
        )
        assert deps.llm is not None
        deps = replace(
            deps,
            llm=StructuredLLM(
                deps.llm.chain,
                malformed_retries,
                context_tokens=CONTEXT_TOKENS,
                tool_calling="json",
            ),
            retriever=retriever_from_settings(settings, pool, embedder),
        )
        run_request(deps, request_id)
    finally:
        pool.close()


@dataclass(frozen=True)
class SmallContext:
    """The sandbox tenant with the handbook, asked in a long thread by a worker whose model
    has a CONTEXT_TOKENS context."""

    stack: Stack
    llm: OpenAIEmulator
    db: DB
    database_url: str
    embedder: LocalEmbedder
    tenant_id: int

    def ask(self, question: str, malformed_retries: int = 0) -> tuple[int, str]:
        """The request and thread of ``question`` asked in a long thread, run to the end."""
        request_id, thread_ts = threaded_request(self.db, self.stack, self.tenant_id, question)
        run_small_context(
            self.stack,
            self.llm,
            self.embedder,
            self.database_url,
            request_id,
            malformed_retries=malformed_retries,
        )
        return request_id, thread_ts


@pytest.fixture
def small(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    database_url: str,
    embedder: LocalEmbedder,
    handbook: int,
) -> SmallContext:
    return SmallContext(stack, llm, db, database_url, embedder, handbook)


def script(llm: OpenAIEmulator, question: str) -> None:
    plan = {"intent": "answer", "search_queries": ["hardware refund"], "tool_calls": []}
    answer = "Customers may return hardware within 45 days of delivery for a full refund [1]."
    llm.script(
        Reply(content=plan), Reply(content={"answer": answer, "citations": ["1"]}), match=question
    )


def steps_of(db: DB, request_id: int) -> dict[str, Any]:
    rows = db.execute(
        """SELECT kind, output FROM agent_steps s JOIN agent_runs r ON r.id = s.run_id
           WHERE r.request_id = %s ORDER BY position""",
        (request_id,),
    ).fetchall()
    return {row["kind"]: row["output"] for row in rows}


def estimated(body: dict[str, Any]) -> int:
    """The request's size as the product estimates without a tokenizer: a token per three
    characters, and six per message for the template's markup."""
    return sum(math.ceil(len(str(m["content"])) / 3) + 6 for m in body["messages"])


def counted_by_emulator(body: dict[str, Any]) -> int:
    return sum(len(emulated_tokens(str(m["content"]))) + 6 for m in body["messages"])


def sources_shown(body: dict[str, Any]) -> list[tuple[int, str, str]]:
    text = next(str(m["content"]) for m in body["messages"] if SOURCES_HEADING in m["content"])
    return parse_sources_block(text)


def test_a_long_thread_and_many_passages_fit_a_small_context(small: SmallContext) -> None:
    """With a 3,000-token context, the Plan and Draft requests fit with room for their
    replies; the oldest turns and the lowest-ranked passages are left out, the newest turn
    and the top passage are kept, and the answer cites the refund policy as [1]."""
    question = f"How long do customers have to return hardware? [case {new_marker(8)}]"
    script(small.llm, question)
    request_id, thread_ts = small.ask(question)

    plan_request, draft_request = small.llm.requests(match=question)
    # Both requests fit the context with their reply's cap, counted as the product must
    # without a tokenizer
    assert estimated(plan_request) + PLAN_MAX_TOKENS <= CONTEXT_TOKENS
    assert estimated(draft_request) + DRAFT_MAX_TOKENS <= CONTEXT_TOKENS
    # The newest turn is kept and the oldest left out, in both
    for body in (plan_request, draft_request):
        sent = " ".join(str(m["content"]) for m in body["messages"])
        assert "NEWEST:" in sent and "OLDEST:" not in sent
        assert body["messages"][0]["role"] == "system"
        assert body["messages"][-1]["role"] == "user" and question in sent
    # The top passage is source [1]; lower ones were left out
    steps = steps_of(small.db, request_id)
    found = steps["retrieve"]["passages"]
    shown = sources_shown(draft_request)
    assert 1 <= len(shown) < len(found)
    assert shown[0][0] == 1 and "45 days" in shown[0][2]
    assert "45 days" in found[0]["text"]
    # The run's steps say what was left out and how the prompt was counted
    draft = steps["draft"]
    assert draft["trimmed"]["passages"] == len(found) - len(shown)
    assert draft["trimmed"]["history_turns"] >= 1
    assert draft["passages_shown"] == len(shown)
    assert draft["counted_with"] == "estimate"
    # The server was asked once whether it counts tokens (it has no /tokenize), not again
    assert len(small.llm.requests(path=TOKENIZE_PATH)) == 1
    assert draft["prompt_tokens"] == estimated(draft_request)
    assert steps["plan"]["trimmed"]["history_turns"] >= 1
    assert steps["plan"]["prompt_tokens"] + PLAN_MAX_TOKENS <= CONTEXT_TOKENS
    # The person gets the answer with the source it cites
    reply = bot_replies(small.stack.slack, thread_ts)[-1]
    assert reply.text.startswith("Customers may return hardware within 45 days")
    assert "*Sources*\n[1] Refund policy" in reply.text


def test_the_servers_tokenizer_counts_the_prompt_when_it_has_one(small: SmallContext) -> None:
    """A server with llama-server's POST /tokenize counts the prompt: the run's steps say
    so, the request fits by that count, and more of the thread fits than the estimate
    would allow."""
    small.llm.serve_tokenize()
    question = f"How long do customers have to return hardware? [case {new_marker(8)}]"
    script(small.llm, question)
    request_id, thread_ts = small.ask(question)

    assert small.llm.requests(path=TOKENIZE_PATH)
    plan_request, draft_request = small.llm.requests(match=question)
    assert counted_by_emulator(draft_request) + DRAFT_MAX_TOKENS <= CONTEXT_TOKENS
    assert counted_by_emulator(plan_request) + PLAN_MAX_TOKENS <= CONTEXT_TOKENS
    # Counted by the tokenizer, which finds fewer tokens than the estimate: the estimate
    # would not have let this request through
    assert estimated(draft_request) + DRAFT_MAX_TOKENS > CONTEXT_TOKENS
    steps = steps_of(small.db, request_id)
    assert steps["draft"]["counted_with"] == "tokenizer"
    assert steps["plan"]["counted_with"] == "tokenizer"
    assert shown_passages_cited(small.stack, thread_ts)
    assert sources_shown(draft_request)[0][0] == 1


def shown_passages_cited(stack: Stack, thread_ts: str) -> bool:
    reply = bot_replies(stack.slack, thread_ts)[-1]
    return "*Sources*\n[1] Refund policy" in reply.text


def test_a_draft_asked_again_after_running_out_of_room_still_fits(small: SmallContext) -> None:
    """A draft cut off at its token cap is shown back to the model, shortened so the
    request that asks again still fits the context, and the second draft is posted."""
    question = f"How long do customers have to return hardware? [case {new_marker(8)}]"
    plan = {"intent": "answer", "search_queries": ["hardware refund"], "tool_calls": []}
    answer = "Customers may return hardware within 45 days of delivery for a full refund [1]."
    small.llm.script(
        Reply(content=plan),
        Reply(content='{"answer": "' + "Customers may return " * 400, finish_reason="length"),
        Reply(content={"answer": answer, "citations": ["1"]}),
        match=question,
    )
    _request_id, thread_ts = small.ask(question, malformed_retries=1)

    _plan, draft, asked_again = small.llm.requests(match=question)
    assert asked_again["messages"][-2]["role"] == "assistant"
    assert "cut off at the length limit" in asked_again["messages"][-1]["content"]
    assert estimated(asked_again) + DRAFT_MAX_TOKENS <= CONTEXT_TOKENS
    assert estimated(draft) < estimated(asked_again)
    reply = bot_replies(small.stack.slack, thread_ts)[-1]
    assert "*Sources*\n[1] Refund policy" in reply.text


def test_a_draft_that_repeats_itself_to_its_cap_is_posted_without_the_loop(
    small: SmallContext,
) -> None:
    """A small model may repeat a sentence until its token cap: what it wrote before the
    loop is the answer, posted with its source, and the model is not kept waiting on again."""
    question = f"How long do customers have to return hardware? [case {new_marker(8)}]"
    plan = {"intent": "answer", "search_queries": ["hardware refund"], "tool_calls": []}
    answer = "Customers may return hardware within 45 days of delivery for a full refund."
    small.llm.script(
        Reply(content=plan),
        Reply(content='{"answer": "' + f"{answer} " * 60 + "Customers may", finish_reason="length"),
        match=question,
    )
    _request_id, thread_ts = small.ask(question, malformed_retries=1)

    assert len(small.llm.requests(match=question)) == 2  # the plan and the one draft
    reply = bot_replies(small.stack.slack, thread_ts)[-1]
    assert reply.text.count("within 45 days") == 1
    assert "45 days of delivery for a full refund [1]" in reply.text
    assert "*Sources*\n[1] Refund policy" in reply.text
