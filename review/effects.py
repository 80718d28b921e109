"""The effect of an action, read from the system it changes: shown on its card before a
decision, and read again just before it runs.

A tool that offers a preview (bot/agent/tools.Previewer) reads the record it acts on when
the action is proposed, moments before its card is posted: "Deal: Acme renewal", "Stage:
Contract sent → Closed won". The preview is stored on the action as its approvers may see
it; the values the action depends on (the stage) are stored as digests only, enough to
tell at execution whether they changed, and nothing the card did not show.

A preview that cannot be read says so on the card and blocks nothing. At execution the
same values are read again: if any changed, the action stops before it changes anything
and says what changed (`Stale`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import structlog
from pydantic import BaseModel

from connectors.rest import ConnectorError
from core.tools import ActionContext, ActionRefused, Tool
from guardrails.at_rest import as_approvers_see
from review import actions

log = structlog.get_logger(__name__)

STALE = (
    "{what} changed from {before} to {now} after this card was posted; nothing was changed. "
    "Ask again if it is still wanted."
)


class Stale(ActionRefused):
    """What the card showed is no longer so; the action did not run."""


def read_for_card(
    conn: actions.Conn, tool: Tool, context: ActionContext, arguments: BaseModel
) -> dict[str, Any] | None:
    """The preview to store on the action (as approvers may see it), or why it could not
    be read; None for a tool without one. Never raises: a card without its effect is
    still a card."""
    if tool.preview is None:
        return None
    try:
        preview = tool.preview.read(context, arguments)
    except ConnectorError as exc:
        log.info("action.preview_failed", tool=tool.name, status=exc.status)
        return _seen(
            conn, context, {"error": f"could not read {tool.preview.reads}: {exc.message}"}
        )
    except Exception as exc:  # a bug or an odd answer must not stop the card being posted
        # The error's type only: its message could quote the record's data.
        log.warning("action.preview_failed", tool=tool.name, error=type(exc).__name__)
        return {"error": f"could not read {tool.preview.reads}: the service's answer made no sense"}
    stored = preview.stored()
    watched = [{**w, "value": _digest(w["value"])} for w in stored["watched"]]
    return {
        **_seen(conn, context, {**stored, "watched": []}),
        "watched": _seen_watched(conn, context, watched),
    }


def check_still_so(
    conn: actions.Conn,
    tool: Tool,
    context: ActionContext,
    arguments: BaseModel,
    stored: dict[str, Any] | None,
) -> None:
    """Raise `Stale` if a value the card showed changed since; ActionRefused if it can no
    longer be read for good; a transient ConnectorError propagates (the job retries)."""
    if tool.preview is None or not stored or not stored.get("watched"):
        return  # nothing was shown that could go stale (or it could not be read then)
    try:
        now = tool.preview.read(context, arguments)
    except ConnectorError as exc:
        if exc.transient:
            raise
        raise ActionRefused(
            f"could not read {tool.preview.reads} again before running it ({exc.message}); "
            "nothing was changed"
        ) from exc
    # In the order the tool read them (what people read is stored as they saw it).
    for before, after in zip(stored["watched"], now.watched, strict=False):
        if _digest(after.value) == before["value"]:
            continue
        shown_now = as_approvers_see(conn, context.tenant_id, after.shown)
        raise Stale(
            STALE.format(
                what=_capitalised(str(before["what"])), before=before["shown"], now=shown_now
            )
        )


def _seen(conn: actions.Conn, context: ActionContext, document: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = as_approvers_see(conn, context.tenant_id, document)
    return seen


def _seen_watched(
    conn: actions.Conn, context: ActionContext, watched: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    # Only what people read is put through the approver view; the digests stay as they are.
    return [
        {
            **w,
            "what": as_approvers_see(conn, context.tenant_id, w["what"]),
            "shown": as_approvers_see(conn, context.tenant_id, w["shown"]),
        }
        for w in watched
    ]


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
