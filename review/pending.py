"""After a run: send its proposed actions to the approval channel and tell the requester."""

from __future__ import annotations

from slack_sdk import WebClient

from review import actions
from review.messages import people_summary
from review.slack_posts import post_approval_request
from review.tenant_settings import ReviewSettings

NO_CHANNEL_NOTE = (
    ":warning: No approval channel is set in this workspace, so nobody can approve this yet. "
    "An admin can set one with `/agent approval-channel #channel`."
)


def announce_pending_actions(
    conn: actions.Conn, client: WebClient, settings: ReviewSettings, run_id: int
) -> str | None:
    """Post each new action of the run for approval; the note to add to the reply, if any."""
    pending = conn.execute(
        """SELECT * FROM pending_actions
           WHERE run_id = %s AND tenant_id = %s AND status = 'pending' ORDER BY id""",
        (run_id, settings.tenant_id),
    ).fetchall()
    if not pending:
        return None
    if settings.approval_channel_id is None:
        return NO_CHANNEL_NOTE
    for action in pending:
        post_approval_request(conn, client, settings, action)
    lines = [f"• {people_summary(action)}" for action in pending]
    return (
        f":hourglass_flowing_sand: Waiting for approval in <#{settings.approval_channel_id}>:\n"
        + "\n".join(lines)
    )
