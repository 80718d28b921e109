"""Who may ask the agent in a channel: anyone, or the members of the user groups an
admin named with `/agent channel ask=@group`. Everyone else gets a polite note that only
they can see, and no run.

Checked on every turn against the channel's current setting (never the thread's pin), so
taking access away holds in threads that started before.
"""

from __future__ import annotations

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = structlog.get_logger(__name__)


def refusal(client: WebClient, allowed_usergroups: tuple[str, ...], user: str) -> str | None:
    """None when `user` may ask; otherwise the note to show them."""
    if not allowed_usergroups:
        return None
    for group in allowed_usergroups:
        try:
            members = client.usergroups_users_list(usergroup=group).get("users") or []
        except SlackApiError as exc:
            # A group that cannot be read admits nobody: failing open would let anyone in.
            log.warning(
                "asking.usergroup_unreadable", usergroup=group, error=exc.response.get("error")
            )
            continue
        if user in members:
            return None
    groups = ", ".join(f"<!subteam^{group}>" for group in allowed_usergroups)
    return (
        f"Sorry, in this channel I can only take questions from {groups}. "
        "If you think you should be able to ask here, please ask a workspace admin."
    )
