"""The outbox of resumed runs: which decided actions continue their run's conversation.

When an action a Slack agent run proposed is approved and done, fails, or is rejected,
the run that proposed it resumes with that outcome (bot/agent/resume.py). The decision is
recorded with the transition itself (`resume_due_at`, in the same UPDATE), so no crash
between the transition and the job's hand-over loses it: the hand-over marks
`resume_queued_at` after sending the job, and the review sweep sends it for any action
still due and unsent. A job sent twice resumes once (one resumed run per action).

Not resumed: what the email inbox's runs propose (their reply_email has no thread
conversation to continue), an answer the guardrails held for review (not the model's
proposal), anything not from an agent run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from review import actions

log = structlog.get_logger(__name__)

BATCH = 200  # resumes relayed per sweep

# Sends the resume job of an action.
Send = Callable[[int], None]

# The outcomes a run resumes from (an expired action was never decided by anyone).
RESUMED_FROM = ("executed", "failed", "rejected")


def due_on_decision(conn: actions.Conn, action: actions.Row) -> dict[str, Any]:
    """The changes that mark ``action`` due to resume, for the transition that decides it:
    {} when its run does not resume."""
    if action["run_id"] is None:
        return {}
    if not str(action["idempotency_key"]).startswith(f"run:{action['run_id']}:call:"):
        return {}  # proposed by the platform (a held answer), not by the model's plan
    row = conn.execute(
        """SELECT 1 FROM agent_runs r
           JOIN inbound_requests q ON q.id = r.request_id AND q.tenant_id = r.tenant_id
           JOIN conversations c ON c.id = r.conversation_id AND c.tenant_id = r.tenant_id
           WHERE r.id = %s AND r.tenant_id = %s AND q.source = 'slack'
             AND c.slack_channel_id IS NOT NULL""",
        (action["run_id"], action["tenant_id"]),
    ).fetchone()
    return {"resume_due_at": actions.NOW} if row is not None else {}


def send_if_due(conn: actions.Conn, tenant_id: int, action_id: int, send: Send) -> bool:
    """Send the resume job of an action just decided, if it is due and not sent yet;
    whether it was sent. Sent before it is marked: a crash in between sends it twice,
    which resumes once, where the other order could lose it."""
    row = conn.execute(
        """SELECT id FROM pending_actions
           WHERE id = %s AND tenant_id = %s AND resume_due_at IS NOT NULL
             AND resume_queued_at IS NULL AND status = ANY(%s)""",
        (action_id, tenant_id, list(RESUMED_FROM)),
    ).fetchone()
    if row is None:
        return False
    send(action_id)
    conn.execute(
        "UPDATE pending_actions SET resume_queued_at = now() WHERE id = %s AND tenant_id = %s",
        (action_id, tenant_id),
    )
    return True


def relay_unsent(conn: actions.Conn, send: Send) -> int:
    """Resumes due whose job was never sent (a crash after the decision), or was put back
    while the tenant was paused: sent now, unless the tenant is still paused."""
    rows = conn.execute(
        """SELECT a.id, a.tenant_id FROM pending_actions a
           LEFT JOIN tenant_settings s ON s.tenant_id = a.tenant_id
           WHERE a.resume_due_at IS NOT NULL AND a.resume_queued_at IS NULL
             AND a.status = ANY(%s) AND NOT coalesce(s.paused, false)
           ORDER BY a.id LIMIT %s""",
        (list(RESUMED_FROM), BATCH),
    ).fetchall()
    relayed = sum(send_if_due(conn, r["tenant_id"], r["id"], send) for r in rows)
    if relayed:
        log.info("run.resumes_relayed", count=relayed)
    return relayed


def put_back(conn: actions.Conn, tenant_id: int, action_id: int) -> None:
    """The resume job found the tenant paused: the sweep sends it again once resumed."""
    conn.execute(
        "UPDATE pending_actions SET resume_queued_at = NULL WHERE id = %s AND tenant_id = %s",
        (action_id, tenant_id),
    )
