"""Emails the agent proposes in the review tests, each returned once its card waits in
#approvals: one asked for in Slack (send_email), or a reply to mail into an inbox
(reply_email)."""

from __future__ import annotations

from typing import Any

import psycopg

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_events import UserPost
from testbed.conversation import plan_calling
from tests.support.conversation import mention, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]


def allow_email_to_customers(db: DB, tenant: int) -> None:
    """The tenant may email customer.example (send_email refuses other domains)."""
    db.execute(
        "INSERT INTO tenant_email_allowlist (tenant_id, domain) VALUES (%s, 'customer.example')"
        " ON CONFLICT DO NOTHING",
        (tenant,),
    )


def ask_for_a_renewal_email(
    stack: Stack, llm: OpenAIEmulator, address: str, marker: str, *, text: str, answer: str
) -> UserPost:
    """The requester asks, in Slack, to email ``address`` about renewal ``marker``; the
    model, shown only the placeholder <EMAIL_1>, proposes a send_email with ``text`` and
    answers ``answer``. The request, once answered."""
    call = {
        "name": "send_email",
        "arguments": {"to": ["<EMAIL_1>"], "subject": f"Renewal {marker}", "text": text},
        "reason": "The requester asked to email <EMAIL_1>.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": answer, "citations": []}),
        match=marker,
    )
    post = mention(stack.slack, f"Please email {address} about the renewal {marker}")
    wait_for_answer(stack.slack, post.message.ts)
    return post


def renewal_email_waiting_for_approval(db: DB, marker: str) -> dict[str, Any]:
    """The send_email action for renewal ``marker``, once its card is posted."""
    action: dict[str, Any] = wait_for(
        lambda: db.execute(
            "SELECT * FROM pending_actions WHERE tool = 'send_email'"
            " AND payload->>'subject' = %s AND approval_ts IS NOT NULL",
            (f"Renewal {marker}",),
        ).fetchone(),
        message="the email waiting for approval",
    )
    return action


def reply_waiting_for_approval(db: DB, marker: str) -> dict[str, Any]:
    """The reply_email action whose text holds ``marker``, once its card is posted."""
    action: dict[str, Any] = wait_for(
        lambda: db.execute(
            """SELECT * FROM pending_actions WHERE tool = 'reply_email'
               AND payload->>'text' LIKE %s AND approval_ts IS NOT NULL""",
            (f"%{marker}%",),
        ).fetchone(),
        timeout=30,
        message="the reply waiting for approval",
    )
    return action
