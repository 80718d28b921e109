"""How a pending action reads in the approval channel, in each of its states."""

from __future__ import annotations

import json
from typing import Any

APPROVE, EDIT, REJECT = "white_check_mark", "pencil2", "x"
PROMPT_REACTIONS = (APPROVE, EDIT, REJECT)
BUTTON_APPROVE, BUTTON_EDIT, BUTTON_REJECT = "review_approve", "review_edit", "review_reject"
EDIT_VIEW = "review_edit_view"
EDIT_BLOCK, EDIT_INPUT = "edited_text", "text"
QUOTE_LIMIT = 2_500  # characters of the action's text shown before eliding

HEADLINES = {
    "pending": ":raised_hand: *Approval needed*",
    "approved": ":hourglass_flowing_sand: *Approved, running…*",
    "executing": ":hourglass_flowing_sand: *Approved, running…*",
    "executed": ":white_check_mark: *Approved and done*",
    "rejected": ":x: *Rejected*",
    "expired": ":alarm_clock: *Expired without a decision*",
    "failed": ":warning: *Approved, but it failed*",
}


def approval_message(
    action: dict[str, Any], thread_link: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the Block Kit blocks of an action's approval message."""
    status = action["status"]
    headline = HEADLINES[status]
    if status == "pending" and action.get("edited_by"):
        headline = ":pencil2: *Edited: needs a final ✅*"
    elif status == "pending" and action.get("edit_requested_by"):
        headline = ":pencil2: *Edit requested: reply in this thread with the new text*"
    # What the approver may see of the stored (placeholder-bearing) summary, payload and
    # the model's reason.
    shown = action.get("shown") or {}
    summary = shown.get("summary", action["summary"])
    payload = shown.get("payload", action["payload"])
    reason = shown.get("reason", action["reason"])
    text = f"{headline}: {summary}"
    lines = [
        f"{headline}\n*{summary}*",
        f"*Requested by* <@{action['requested_by']}>"
        + (f" · <{thread_link}|conversation>" if thread_link else ""),
        f"*Why:* {reason}",
    ]
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    blocks.append(_section(_quote(payload)))
    if action.get("edited_by"):
        blocks.append(
            _context(
                f"Edited by <@{action['edited_by']}>. "
                f"Original: {_one_line(shown.get('original_payload', action['original_payload']))}"
            )
        )
    if action.get("citations"):
        blocks.append(_context("Sources: " + ", ".join(str(c) for c in action["citations"])))
    if action.get("flags"):
        blocks.append(_context(":warning: Flagged: " + ", ".join(action["flags"])))
    blocks.append(_context(_outcome(action)))
    if status == "pending":
        blocks.append(
            {
                "type": "actions",
                "block_id": f"review_{action['id']}",
                "elements": [
                    _button("Approve", BUTTON_APPROVE, action["id"], "primary"),
                    _button("Edit", BUTTON_EDIT, action["id"]),
                    _button("Reject", BUTTON_REJECT, action["id"], "danger"),
                ],
            }
        )
    return text, blocks


def edit_view(action: dict[str, Any]) -> dict[str, Any]:
    """The modal an approver edits the action's text in."""
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": json.dumps({"action_id": action["id"]}),
        "title": {"type": "plain_text", "text": "Edit the action"},
        "submit": {"type": "plain_text", "text": "Save edit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": EDIT_BLOCK,
                "label": {"type": "plain_text", "text": action["summary"][:150]},
                "element": {
                    "type": "plain_text_input",
                    "action_id": EDIT_INPUT,
                    "multiline": True,
                    "initial_value": str(action["payload"].get("text", ""))[:3000],
                },
            }
        ],
    }


def _outcome(action: dict[str, Any]) -> str:
    status = action["status"]
    who = f"<@{action['decided_by']}>" if action.get("decided_by") else "nobody"
    if status == "pending":
        return "React ✅ to approve, ✏️ to edit, ❌ to reject (or use the buttons)."
    if status in ("approved", "executing"):
        return f"Approved by {who}."
    if status == "executed":
        return f"Approved by {who} and done."
    if status == "rejected":
        reason = action.get("reject_reason")
        return f"Rejected by {who}" + (
            f": {reason}" if reason else ". Reply in this thread to say why."
        )
    if status == "expired":
        return "Nobody decided before it expired."
    return f"Approved by {who}, but it failed: {action.get('error') or 'unknown error'}"


def _quote(payload: dict[str, Any]) -> str:
    text = str(payload.get("text") or payload.get("body") or "")
    others = {k: v for k, v in payload.items() if k not in ("text", "body")}
    quoted = "\n".join("> " + line for line in text[:QUOTE_LIMIT].splitlines()) if text else ""
    details = "\n".join(f"*{k}:* {v}" for k, v in others.items())
    return "\n".join(part for part in (details, quoted) if part) or "(no content)"


def _one_line(payload: dict[str, Any]) -> str:
    text = str(payload.get("text") or payload)
    return (text[:200] + "…") if len(text) > 200 else text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:2900]}]}


def _button(
    label: str, action_id: str, pending_id: int, style: str | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": str(pending_id),
    }
    if style:
        button["style"] = style
    return button
