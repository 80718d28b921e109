"""Pending actions that nobody decides: a reminder, then expiry; and what reviewers teach."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from connectors.slack.web_client import make_web_client
from core.db import open_pool
from review.sweep import sweep
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    action_row,
    audit_actions,
    posts_in_support,
    propose_post,
    thread_texts,
)
from tests.support.channels import admin_command, new_channel
from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    mention,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack


def test_unanswered_action_gets_a_reminder_then_expires(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, worker_conn
) -> None:  # type: ignore[no-untyped-def]
    """With the clock moved near the deadline a reminder appears; past it the action expires and
    the requester is told, and a late ✅ runs nothing."""
    text = f"Expiring announcement ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    expires_at = proposal.action["expires_at"]
    queued: list[int] = []

    def client(token: str):  # type: ignore[no-untyped-def]
        return make_web_client(token, stack.slack.api_url)

    # Given the clock one hour before the deadline (inside the 2-hour reminder window)
    sweep(worker_conn, client, queued.append, now=expires_at - timedelta(hours=1))
    reminders = [m.text for m in stack.slack.thread(APPROVALS, proposal.approval.ts)]
    assert any("Reminder" in t for t in reminders)
    assert action_row(db, proposal.action["id"])["status"] == "pending"

    # When the clock passes the deadline
    report = sweep(worker_conn, client, queued.append, now=expires_at + timedelta(seconds=1))

    # Then it expired, the requester heard, and approving it now does nothing
    assert report.expired >= 1
    assert action_row(db, proposal.action["id"])["status"] == "expired"
    assert any(
        "Nobody approved it in time" in t for t in thread_texts(stack.slack, proposal.thread_ts)
    )
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for(lambda: audit_actions(db, proposal.action["id"])[-1] == "action.expired")
    assert posts_in_support(stack.slack, text) == [] and queued == []


def test_an_edit_teaches_the_next_similar_draft(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """After a reviewer edits an announcement, the prompts for the next similar request carry
    the correction, so the same fix is not needed twice."""
    marker = new_marker(8)
    original = f"Zephyrgate outage is over {marker}"
    corrected = f"The Zephyrgate outage ended at 14:05 UTC; sorry for the trouble {marker}"
    proposal = propose_post(stack.slack, llm, db, original)
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "pencil2")
    wait_for(lambda: action_row(db, proposal.action["id"])["edit_requested_by"] == APPROVER)
    stack.slack.post_as_user(APPROVER, APPROVALS, corrected, thread_ts=proposal.approval.ts)
    wait_for(lambda: action_row(db, proposal.action["id"])["edited_by"] == APPROVER)

    question = unique_question("Tell #support the Zephyrgate outage is over")
    llm.script(
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": []}),
        Reply(content={"answer": "ok", "citations": []}),
        match=question,
    )
    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)
    prompts = [json.dumps(r["messages"]) for r in llm.requests(match=question)]
    assert len(prompts) == 2
    assert all(corrected in p for p in prompts)


def test_corrections_stay_with_the_agent_template_they_were_made_for(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """A correction of a draft the knowledge agent proposed teaches the knowledge agent's
    later drafts, and not the drafts of runs under another (or no) template."""
    marker = new_marker(8)
    original = f"Quillbrook release is out {marker}"
    corrected = f"Quillbrook 2.4 shipped at 09:00 UTC to all regions {marker}"
    proposal = propose_post(stack.slack, llm, db, original)
    # As if the run that proposed it had been under the knowledge template (whose own
    # tools cannot post elsewhere, so it cannot propose this post for real).
    db.execute(
        "UPDATE agent_runs SET template_name = 'knowledge' WHERE id = %s",
        (proposal.action["run_id"],),
    )
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "pencil2")
    wait_for(lambda: action_row(db, proposal.action["id"])["edit_requested_by"] == APPROVER)
    stack.slack.post_as_user(APPROVER, APPROVALS, corrected, thread_ts=proposal.approval.ts)
    wait_for(lambda: action_row(db, proposal.action["id"])["edited_by"] == APPROVER)
    stored = db.execute(
        "SELECT template FROM reviewer_feedback WHERE action_id = %s",
        (proposal.action["id"],),
    ).fetchone()
    assert stored == {"template": "knowledge"}

    def prompts_for(channel: str, topic: str) -> list[str]:
        question = unique_question(topic)
        llm.script(
            Reply(content={"intent": "answer", "search_queries": [], "tool_calls": []}),
            Reply(content={"answer": "ok", "citations": []}),
            match=question,
        )
        stack.slack.post_as_user(REQUESTER, channel, f"<@{stack.slack.bot_user_id}> {question}")
        return wait_for(
            lambda: (
                [json.dumps(r["messages"]) for r in requests]
                if len(requests := llm.requests(match=question)) >= 2
                else None
            ),
            message="the run's plan and draft prompts",
        )

    # A similar request under no template does not see it
    assert not any(corrected in p for p in prompts_for(GENERAL, "Is the Quillbrook release out?"))
    # One in a channel using the knowledge template does
    channel = new_channel(stack.slack)
    admin_command(stack.slack, channel, "channel template=knowledge")
    assert all(corrected in p for p in prompts_for(channel, "Is the Quillbrook release out?"))


def test_the_audit_log_cannot_be_rewritten(db: DB) -> None:
    """UPDATE, DELETE and TRUNCATE on the audit log are all refused."""
    db.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'test.cannot_rewrite')")
    for statement in (
        "UPDATE audit_log SET actor = 'x' WHERE action = 'test.cannot_rewrite'",
        "DELETE FROM audit_log WHERE action = 'test.cannot_rewrite'",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute(statement)
    assert db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'test.cannot_rewrite'"
    ).fetchone() == {"n": 1}


def test_the_sweep_forgets_personal_data_older_than_the_retention(
    stack: Stack, db: DB, tenant: int, database_url: str
) -> None:
    """A placeholder's real value older than GUARDRAILS_VAULT_RETENTION_DAYS (30) is
    deleted by the worker's periodic sweep; a recent one is kept."""
    from core.settings import load_settings
    from guardrails.facade import build_guardrails

    pool = open_pool(database_url, max_size=1)
    try:
        settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
        vault = build_guardrails(settings, pool).vault
        old, recent = f"old-{new_marker(6)}", f"recent-{new_marker(6)}"
        vault.placeholders_for(tenant, old, [("EMAIL_ADDRESS", "old@customer.example")])
        vault.placeholders_for(tenant, recent, [("EMAIL_ADDRESS", "new@customer.example")])
    finally:
        pool.close()
    db.execute(
        "UPDATE pii_vault SET created_at = now() - interval '31 days'"
        " WHERE tenant_id = %s AND conversation_key = %s",
        (tenant, old),
    )

    def kept(key: str) -> int:
        row = db.execute(
            "SELECT count(*) AS n FROM pii_vault WHERE tenant_id = %s AND conversation_key = %s",
            (tenant, key),
        ).fetchone()
        assert row is not None
        return int(row["n"])

    # The listener enqueues a sweep every 15 s.
    wait_for(lambda: kept(old) == 0, timeout=40, message="the old placeholder to be purged")
    assert kept(recent) == 1
