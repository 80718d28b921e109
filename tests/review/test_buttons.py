"""The Approve, Edit and Reject buttons do what the reactions do, for people who prefer them."""

from __future__ import annotations

import json
from typing import Any

from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    action_row,
    posts_in_support,
    propose_post,
    thread_texts,
    wait_for_status,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack


def card_text(blocks: list[dict[str, Any]]) -> str:
    """Every text a person reads on a card, block after block."""
    return json.dumps(blocks, ensure_ascii=False)


def test_approve_button_runs_the_action(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Pressing Approve runs the action once, like a ✅."""
    text = f"Approved by button ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    result = stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_approve")
    assert result.status == 200
    wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, text)) == 1


def test_reject_button_asks_for_an_optional_reason_then_rejects(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Pressing Reject opens a modal asking why (optional); submitting it rejects the
    action, the requester's thread hears who rejected it and why, and the card reads as
    decided: who, the reason, no buttons, none of the bot's own prompt reactions."""
    text = f"Rejected by button ({new_marker(6)})"
    reason = f"Not before the release notes are out ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_reject")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the reject modal")
    assert view.blocks[-1]["optional"] is True
    assert "why" in view.blocks[-1]["label"]["text"].lower()
    assert action_row(db, proposal.action["id"])["status"] == "pending"  # not until submitted

    stack.slack.submit_view(APPROVER, view.id, {"reject_reason": {"text": reason}})

    row = wait_for_status(db, proposal.action["id"], "rejected")
    assert row["reject_reason"] == reason
    wait_for(
        lambda: any(
            "rejected" in t and reason in t for t in thread_texts(stack.slack, proposal.thread_ts)
        ),
        message="the rejection and its reason in the requester's thread",
    )
    card = wait_for(
        lambda: (
            (m := stack.slack.workspace.message(APPROVALS, proposal.approval.ts))
            and not m.reactions
            and m
        )
    )
    shown = card_text(card.blocks)
    assert f"Rejected by <@{APPROVER}>" in shown and reason in shown
    assert not [b for b in card.blocks if b["type"] == "actions"]


def test_edit_button_opens_a_modal_whose_text_replaces_the_payload(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Edit opens a modal prefilled with the text; saving it replaces the text, which then
    needs a final approval and runs as edited."""
    text = f"Draft from the agent ({new_marker(6)})"
    edited = f"Better words from the approver ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    field = next(b for b in view.blocks if b["type"] == "input")["element"]
    assert field["initial_value"] == text

    submitted = stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": edited}})
    assert submitted.status == 200
    row = wait_for(lambda: (r := action_row(db, proposal.action["id"]))["edited_by"] and r)
    assert row["status"] == "pending" and row["payload"]["text"] == edited

    # The approver approves the card once it shows the edited text, as a person would: an
    # Approve on the card still showing the earlier version is refused as stale.
    wait_for(
        lambda: (
            edited
            in card_text(
                stack.slack.workspace.message(APPROVALS, proposal.approval.ts).blocks or []
            )
        ),
        message="the card showing the edited text",
    )
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_approve")
    wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, edited)) == 1
    assert posts_in_support(stack.slack, text) == []
