"""The Block Kit rules the Slack emulator enforces when an app posts blocks.

Slack refuses a message whose blocks break its rules with ``invalid_blocks``; an emulator
that accepted them would let a broken message pass every test and then fail in a real
workspace. Only the blocks whose rules matter to apps here are checked: the
``context_actions`` block with its ``feedback_buttons`` (👍 / 👎) and ``icon_button``
elements. Other blocks pass as long as they have a type.
"""

from __future__ import annotations

from sandbox.slack_types import JsonDict

MAX_CONTEXT_ACTIONS = 5  # elements in one context_actions block
MAX_BUTTON_TEXT = 75  # characters of a feedback button's label
MAX_VALUE = 2000  # characters of a button's value
MAX_ID = 255  # characters of an action_id or block_id


def block_problem(block: JsonDict) -> str | None:
    """Why Slack would refuse ``block``, or None if it would take it."""
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > MAX_ID):
        return "block_id must be a string of at most 255 characters"
    if block.get("type") != "context_actions":
        return None
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ACTIONS:
        return "context_actions needs 1 to 5 elements"
    for element in elements:
        problem = _context_action_problem(element)
        if problem is not None:
            return problem
    return None


def _context_action_problem(element: object) -> str | None:
    if not isinstance(element, dict):
        return "context_actions elements must be objects"
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > MAX_ID):
        return "action_id must be a string of at most 255 characters"
    kind = element.get("type")
    if kind == "feedback_buttons":
        for side in ("positive_button", "negative_button"):
            problem = _feedback_button_problem(element.get(side))
            if problem is not None:
                return f"{side}: {problem}"
        return None
    if kind == "icon_button":
        if not isinstance(element.get("icon"), str) or not _plain_text(element.get("text")):
            return "icon_button needs an icon and a plain_text text"
        return None
    return f"context_actions cannot hold a {kind!r} element"


def _feedback_button_problem(button: object) -> str | None:
    if not isinstance(button, dict):
        return "required"
    text = _plain_text(button.get("text"))
    if not text or len(text) > MAX_BUTTON_TEXT:
        return "text must be plain_text of at most 75 characters"
    value = button.get("value")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE:
        return "value must be a string of 1 to 2000 characters"
    return None


def _plain_text(text: object) -> str | None:
    """The words of a plain_text object; None for anything else (mrkdwn is not allowed)."""
    if isinstance(text, dict) and text.get("type") == "plain_text":
        words = text.get("text")
        return words if isinstance(words, str) else None
    return None
