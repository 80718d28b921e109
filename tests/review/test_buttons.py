"""The Approve, Edit and Reject buttons do what the reactions do, for people who prefer them."""

from __future__ import annotations

import uuid

from sandbox.openai_emulator import OpenAIEmulator
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


def test_approve_button_runs_the_action(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Pressing Approve runs the action once, like a ✅."""
    text = f"Approved by button ({uuid.uuid4().hex[:6]})"
    proposal = propose_post(stack.slack, llm, db, text)
    result = stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_approve")
    assert result.status == 200
    wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, text)) == 1


def test_reject_button_rejects(stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int) -> None:
    """Pressing Reject rejects the action and tells the requester."""
    text = f"Rejected by button ({uuid.uuid4().hex[:6]})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_reject")
    wait_for_status(db, proposal.action["id"], "rejected")
    wait_for(lambda: any("rejected" in t for t in thread_texts(stack.slack, proposal.thread_ts)))


def test_edit_button_opens_a_modal_whose_text_replaces_the_payload(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Edit opens a modal prefilled with the text; saving it replaces the text, which then
    needs a final approval and runs as edited."""
    text = f"Draft from the agent ({uuid.uuid4().hex[:6]})"
    edited = f"Better words from the approver ({uuid.uuid4().hex[:6]})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    field = view.blocks[0]["element"]
    assert field["initial_value"] == text

    submitted = stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": edited}})
    assert submitted.status == 200
    row = wait_for(lambda: (r := action_row(db, proposal.action["id"]))["edited_by"] and r)
    assert row["status"] == "pending" and row["payload"]["text"] == edited

    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_approve")
    wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, edited)) == 1
    assert posts_in_support(stack.slack, text) == []
