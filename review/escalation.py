"""Escalation: an action nobody decided within the tenant's escalation time is shown,
once, to a second group of approvers (`/agent escalate @group after 2h`), who may then
decide it too (review/authority.py); it still expires as any action does.

The sweep escalates (review/sweep.py); this module says it in people's words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any


def duration(span: timedelta) -> str:
    """A span as people say it: "2 hours", "1 hour 30 minutes", "45 minutes", "3 days"."""
    minutes = max(1, round(span.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts[:2])


def mentions(targets: Sequence[str]) -> str:
    """<@U1>, <!subteam^S1> and <@U2>."""
    if len(targets) <= 1:
        return "".join(targets)
    return ", ".join(targets[:-1]) + " and " + targets[-1]


def card_note(action: Mapping[str, Any]) -> str | None:
    """The line an escalated, still undecided card shows; None if not escalated."""
    if action["status"] != "pending" or not action.get("escalated_at"):
        return None
    waited = duration(action["escalated_at"] - action["created_at"])
    return (
        f":rotating_light: Escalated to {mentions(action['escalated_to'] or [])} after "
        f"{waited} without a decision; they can decide it too."
    )


def thread_note(action: Mapping[str, Any], waited: timedelta) -> str:
    """The message under the card that calls the escalation group in."""
    return (
        f":rotating_light: {mentions(action['escalated_to'] or [])}: this has waited "
        f"{duration(waited)} for a decision. You can approve, edit or reject it too (above)."
    )
