"""After a run: approve what an "always allow" rule covers, send the rest of its proposed
actions to the approval channel, and tell the requester."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from slack_sdk import WebClient

from review import actions, rules
from review.messages import people_summary
from review.slack_posts import post_approval_request
from review.tenant_settings import ReviewSettings

log = structlog.get_logger(__name__)

NO_CHANNEL_NOTE = (
    ":warning: No approval channel is set in this workspace, so nobody can approve this yet. "
    "An admin can set one with `/agent approval-channel #channel`."
)


def announce_pending_actions(
    conn: actions.Conn,
    client: WebClient,
    settings: ReviewSettings,
    run_id: int,
) -> str | None:
    """Post each new action of the run for approval; the note to add to the reply, if any.

    Actions a live rule covers are approved by it, and their card (when there is an
    approval channel) shows the rule; `run_allowed` runs them once the reply is posted.
    """
    allowed = rules.allow_by_rules(conn, settings.tenant_id, run_id)
    for action in allowed:
        if settings.approval_channel_id is not None:
            post_approval_request(conn, client, settings, action)
    pending = conn.execute(
        """SELECT * FROM pending_actions
           WHERE run_id = %s AND tenant_id = %s AND status = 'pending' ORDER BY id""",
        (run_id, settings.tenant_id),
    ).fetchall()
    notes = [
        f":white_check_mark: Allowed by {rules.decided_by(conn, action)}, so it runs now: "
        f"{people_summary(action)}"
        for action in allowed
    ]
    if pending and settings.approval_channel_id is None:
        notes.append(NO_CHANNEL_NOTE)
    elif pending:
        for action in pending:
            post_approval_request(conn, client, settings, action)
        lines = [f"• {people_summary(action)}" for action in pending]
        notes.append(
            f":hourglass_flowing_sand: Waiting for approval in <#{settings.approval_channel_id}>:\n"
            + "\n".join(lines)
        )
    return "\n".join(notes) or None


def run_allowed(
    conn: actions.Conn, tenant_id: int, run_id: int, execute: Callable[[int], None]
) -> None:
    """Run the run's actions a rule approved (after the reply, so the requester reads the
    answer before the outcome). If this job dies first, or `execute` fails, the sweep
    hands them to execution as any approved action (review/sweep.py): they run once."""
    allowed = conn.execute(
        """SELECT * FROM pending_actions
           WHERE run_id = %s AND tenant_id = %s AND status = 'approved'
             AND allowed_by_rule IS NOT NULL AND queued_at IS NULL ORDER BY id""",
        (run_id, tenant_id),
    ).fetchall()
    for action in allowed:
        # Marked handed over first, as for a person's approval (review/decisions.py).
        actions.set_fields(conn, action, queued_at=actions.NOW)
        try:
            execute(action["id"])
        except Exception:
            log.warning("action.rule_execution_deferred", action_id=action["id"], exc_info=True)
