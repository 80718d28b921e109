"""A tenant with an approval channel and one approver, and helpers to get an action proposed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from connectors.email.inboxes import add_inbox
from core.db import open_pool
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Message
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.support.conversation import mention, unique_question, wait_for_answer
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack, free_port

DB = psycopg.Connection[dict[str, Any]]
APPROVALS = "C0APPROVALS"
SUPPORT = "C0SUPPORT"
APPROVER = "U0APPROVER"
REQUESTER = "U0REQUESTER"


@pytest.fixture
def worker_conn(database_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A connection as a worker job gets one (from the pool, autocommit), for calling
    review code in the test process."""
    pool = open_pool(database_url, max_size=1)
    with pool.connection() as conn:
        yield conn
    pool.close()


@pytest.fixture
def tenant(stack: Stack, db: DB) -> Iterator[int]:
    """The sandbox workspace's tenant, reset to: approvals in #approvals, one approver."""
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    tenant_id: int = row["tenant_id"]
    db.execute(
        """INSERT INTO tenant_settings (tenant_id, approval_channel_id, four_eyes, paused)
           VALUES (%s, %s, false, false)
           ON CONFLICT (tenant_id) DO UPDATE SET approval_channel_id = EXCLUDED.approval_channel_id,
             four_eyes = false, paused = false, approver_group_id = NULL""",
        (tenant_id, APPROVALS),
    )
    db.execute("DELETE FROM tenant_approvers WHERE tenant_id = %s", (tenant_id,))
    _no_rules_or_escalation(db, tenant_id)
    db.execute(
        "INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by) VALUES (%s, %s, 'test')",
        (tenant_id, APPROVER),
    )
    yield tenant_id
    # A failed test must not leave the shared tenant paused for the rest of the session.
    db.execute(
        "UPDATE tenant_settings SET paused = false, four_eyes = false WHERE tenant_id = %s",
        (tenant_id,),
    )
    _no_rules_or_escalation(db, tenant_id)


def _no_rules_or_escalation(db: DB, tenant_id: int) -> None:
    """No "always allow" rule or escalation left by a test approves or calls anyone in on
    another test's actions."""
    db.execute(
        """UPDATE action_rules SET revoked_at = now(), revoked_by = 'test'
           WHERE tenant_id = %s AND revoked_at IS NULL""",
        (tenant_id,),
    )
    db.execute(
        "UPDATE tenant_settings SET escalate_to = NULL, escalate_after = NULL WHERE tenant_id = %s",
        (tenant_id,),
    )


@pytest.fixture
def inbox(
    stack: Stack, db: DB, tenant: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """`chatops smtp` for the sandbox tenant's inbox, queueing to the session's worker."""
    address = f"support-{new_marker(6)}@acme.example"
    add_inbox(db, tenant, address)
    port = free_port()
    listener = ChatopsProcess(
        ["smtp"], stack.env | {"SMTP_PORT": str(port)}, tmp_path_factory.mktemp("smtp") / "smtp.log"
    )
    listener.start(ready_line="smtp.ready")
    try:
        yield address, port
    finally:
        listener.stop()


@dataclass(frozen=True)
class Proposal:
    question: str
    thread_ts: str
    action: dict[str, Any]
    approval: Message


def propose_post(
    slack: SlackEmulator, llm: OpenAIEmulator, db: DB, text: str, *, topic: str = "Announce"
) -> Proposal:
    """Ask the bot for something that needs posting elsewhere; return the pending action."""
    question = unique_question(f"{topic} in #support: {text}")
    call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": text},
        "reason": "The requester asked to tell the support team.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "I'll post that once it is approved.", "citations": []}),
        match=question,
    )
    post = mention(slack, question)
    answer = wait_for_answer(slack, post.message.ts)
    assert "Waiting for approval" in answer.text
    action = wait_for(
        lambda: db.execute(
            """SELECT a.* FROM pending_actions a JOIN agent_runs r ON r.id = a.run_id
               JOIN inbound_requests q ON q.id = r.request_id
               WHERE q.external_id = %s AND a.approval_ts IS NOT NULL""",
            (post.deliveries[0].event_id,),
        ).fetchone()
    )
    approval = slack.workspace.message(APPROVALS, action["approval_ts"])
    return Proposal(question, post.message.ts, action, approval)


def action_row(db: DB, action_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM pending_actions WHERE id = %s", (action_id,)).fetchone()
    assert row is not None
    return row


def wait_for_status(db: DB, action_id: int, status: str, timeout: float = 20) -> dict[str, Any]:
    return wait_for(
        lambda: (row := action_row(db, action_id))["status"] == status and row,
        timeout=timeout,
        message=f"action {action_id} to be {status}",
    )


def posts_in_support(slack: SlackEmulator, text: str) -> list[Message]:
    return [m for m in slack.history(SUPPORT) if m.bot_id and m.text == text]


def thread_texts(slack: SlackEmulator, thread_ts: str) -> list[str]:
    return [m.text for m in slack.thread("C0GENERAL", thread_ts)]


def audit_actions(db: DB, action_id: int) -> list[str]:
    return [
        r["action"]
        for r in db.execute(
            "SELECT action FROM audit_log WHERE subject = %s ORDER BY id", (f"action:{action_id}",)
        )
    ]
