"""Running one request in-process, against real Postgres and the Slack emulator.

These cover the moments between two writes that a crash test cannot reliably hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bot.agent.run_request import REPLY_EVENT_TYPE, WorkerDeps, run_request
from connectors.slack.web_client import make_web_client
from core.db import Pool, open_pool
from core.knowledge import EmptyKnowledge, NoTools
from core.settings import load_settings
from guardrails.facade import Guardrails, build_guardrails
from testbed.markers import new_marker
from tests.support.conversation import GENERAL, bot_replies
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]


def guardrails_for(database_url: str, pool: Pool) -> Guardrails:
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    return build_guardrails(settings, pool)


@pytest.fixture
def offline_deps(database_url: str, stack: Stack) -> Iterator[WorkerDeps]:
    pool = open_pool(database_url, max_size=2)
    yield WorkerDeps(
        pool=pool,
        llm=None,
        retriever=EmptyKnowledge(),
        tools=NoTools(),
        slack_client=lambda token: make_web_client(token, stack.slack.api_url),
        max_steps=6,
        prices={},
        guardrails=guardrails_for(database_url, pool),
    )
    pool.close()


def stored_request(db: DB, stack: Stack, text: str) -> tuple[int, dict[str, Any]]:
    """A mention as the listener would have stored it, without queueing it."""
    stored = store_mention(db, stack, text)
    return stored.request_id, {"ts": stored.ts, "tenant_id": stored.tenant_id}


def test_reply_posted_but_not_recorded_is_found_again(
    stack: Stack, offline_deps: WorkerDeps, db: DB
) -> None:
    """A run that died after posting its placeholder, before saving its ts, edits that message
    on retry instead of posting a second one."""
    request_id, thread = stored_request(db, stack, f"crash window {new_marker(6)}")
    # Given a run that had announced its intent to post and whose message reached Slack
    conversation = db.execute(
        """INSERT INTO conversations (tenant_id, channel_kind, external_key, slack_channel_id,
             slack_thread_ts) VALUES (%s, 'slack', %s, %s, %s) RETURNING id""",
        (thread["tenant_id"], f"{GENERAL}:{thread['ts']}", GENERAL, thread["ts"]),
    ).fetchone()
    assert conversation is not None
    run = db.execute(
        """INSERT INTO agent_runs (tenant_id, conversation_id, request_id, mode, attempts,
             reply_intent_at) VALUES (%s, %s, %s, 'offline', 1, now()) RETURNING id""",
        (thread["tenant_id"], conversation["id"], request_id),
    ).fetchone()
    assert run is not None
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    posted = client.chat_postMessage(
        channel=GENERAL,
        thread_ts=thread["ts"],
        text="placeholder from the attempt that died",
        metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"run_id": run["id"]}},
    )

    # When the request is run again
    run_request(offline_deps, request_id)

    # Then that same message now carries the answer, and no other was posted
    replies = bot_replies(stack.slack, thread["ts"])
    assert [m.ts for m in replies] == [posted["ts"]]
    assert replies[0].text.startswith("_Offline mode")


def test_finished_request_is_not_answered_again(
    stack: Stack, offline_deps: WorkerDeps, db: DB
) -> None:
    """A duplicate job for a request already answered changes nothing in Slack."""
    request_id, thread = stored_request(db, stack, f"twice {new_marker(6)}")
    run_request(offline_deps, request_id)
    first = bot_replies(stack.slack, thread["ts"])
    calls_before = len(stack.slack.calls())
    run_request(offline_deps, request_id)
    assert bot_replies(stack.slack, thread["ts"]) == first
    assert len(stack.slack.calls()) == calls_before


def test_step_limit_ends_in_an_apology(stack: Stack, llm, database_url: str, db: DB) -> None:
    """A model whose drafts never pass verification runs out of steps and the user is told."""
    from sandbox.openai_script import Reply
    from tests.support.conversation import PLAN

    text = f"cite something {new_marker(6)}"
    llm.script(
        Reply(content=PLAN),
        Reply(
            content={"answer": "   ", "citations": []},  # empty: fails every time
            repeat=True,
        ),
        match=text,
    )
    pool = open_pool(database_url, max_size=2)
    try:
        deps = in_process_deps(stack, llm, pool, guardrails_for(database_url, pool))
        request_id, thread = stored_request(db, stack, text)
        run_request(deps, request_id)
    finally:
        pool.close()
    reply = bot_replies(stack.slack, thread["ts"])[-1]
    assert "couldn't complete" in reply.text and "passed my checks" in reply.text
    steps = db.execute(
        """SELECT kind FROM agent_steps s JOIN agent_runs r ON r.id = s.run_id
           WHERE r.request_id = %s ORDER BY position""",
        (request_id,),
    ).fetchall()
    assert [s["kind"] for s in steps] == ["plan", "retrieve", "draft", "verify", "draft", "verify"]
