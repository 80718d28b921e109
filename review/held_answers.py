"""Answers the guardrails would not post on their own (a toxicity score above the tenant's
threshold, with the policy set to "review") go to the approval channel like any action:
the answer appears in the requester's thread only once a person approves it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from connectors.slack.tools import REPLY_IN_THREAD
from review import actions

HELD_NOTICE = (
    ":mag: I drafted an answer, but my checks asked a person to look at it first. "
    "It will appear in this thread once a reviewer approves it."
)


def hold_for_review(
    conn: actions.Conn,
    *,
    tenant_id: int,
    conversation_id: int,
    run_id: int,
    channel: str,
    thread_ts: str,
    text: str,
    requested_by: str,
    flags: list[str],
    ttl: timedelta,
    approver_view: Callable[[dict[str, Any]], dict[str, Any]] = lambda proposal: proposal,
) -> actions.Row:
    """Propose posting `text` (with the conversation's placeholders; they are restored
    when it runs) in the thread; the run's id makes proposing it twice a no-op."""
    summary = f"Post the assistant's held answer in <#{channel}>"
    payload = {"channel": channel, "thread_ts": thread_ts, "text": text}
    stored = {"summary": summary, "payload": payload}
    shown = approver_view(stored)
    return actions.propose(
        conn,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        run_id=run_id,
        tool=REPLY_IN_THREAD,
        summary=summary,
        payload=payload,
        requested_by=requested_by,
        reason="The guardrails held this answer for a person to check.",
        citations=[],
        flags=flags,
        idempotency_key=f"run:{run_id}:held-answer",
        ttl=ttl,
        shown=shown if shown != stored else None,
    )
