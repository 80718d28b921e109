""" "Make a golden case" on the `/agent feedback` view: an admin turns a 👎 with a reason
or a rejection into a golden-set candidate with one click, through the real listener and
worker; the view updates in place to say so and how to accept it; a person who is no
longer an admin is refused."""

from __future__ import annotations

from typing import Any

from review.answer_feedback import REASON_BLOCK, REASON_INPUT
from review.golden_cases import GOLDEN_BUTTON
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_workspace import EphemeralMessage
from testbed.markers import new_marker
from tests.bot.intake.test_feedback_listeners import ADMIN, answered, click_rating, run_of
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    action_row,
    propose_post,
    wait_for_status,
)
from tests.support.channels import admin_command
from tests.support.conversation import GENERAL, REQUESTER
from tests.support.golden import golden_candidates_cli, golden_saved_cli
from tests.support.processes import wait_for
from tests.support.stack import Stack


def _thumbs_down(stack: Stack, llm: OpenAIEmulator, db: DB, reason: str) -> int:
    reply = answered(stack, llm, answer="Restart it twice.")
    before = stack.slack.last_view(REQUESTER)
    click_rating(stack, reply, "negative")
    modal = wait_for(
        lambda: (v := stack.slack.last_view(REQUESTER)) and v is not before and v,
        message="the 'what was wrong' modal",
    )
    stack.slack.submit_view(REQUESTER, modal.id, {REASON_BLOCK: {REASON_INPUT: reason}})
    run_id = run_of(db, reply)
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM answer_ratings WHERE run_id = %s AND reason = %s", (run_id, reason)
        ).fetchone(),
        message="the reason to be stored",
    )
    return run_id


def _feedback_view(stack: Stack, user: str) -> EphemeralMessage:
    """`/agent feedback` as `user` runs it: the ephemeral view with its blocks."""
    result = stack.slack.run_slash_command(user, GENERAL, "feedback")
    assert result.response is not None and result.response.get("blocks"), result.response
    return max(
        (m for m in stack.slack.workspace.ephemeral_messages(user) if m.blocks),
        key=lambda m: float(m.ts),
    )


def _item(view: EphemeralMessage, marker: str) -> dict[str, Any]:
    """The section of the view whose text holds `marker`."""
    (section,) = [
        b
        for b in view.blocks or []
        if b["type"] == "section" and marker in b.get("text", {}).get("text", "")
    ]
    return section


def _words(view: EphemeralMessage) -> str:
    """Everything the view shows a person (not the buttons' values)."""
    shown = []
    for block in view.blocks or []:
        if "text" in block:
            shown.append(block["text"]["text"])
        for element in block.get("elements", []):
            shown.append(element.get("text", ""))
        if "accessory" in block:
            shown.append(block["accessory"]["text"]["text"])
    return "\n".join(shown)


def test_an_admin_makes_a_golden_case_from_a_thumbs_down_in_one_click(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    marker = new_marker(8)
    reason = f"It should say to call the helpdesk ({marker}); ask jane.doe@example.com"
    run_id = _thumbs_down(stack, llm, db, reason)

    view = _feedback_view(stack, ADMIN)
    item = _item(view, marker)
    words = _words(view)
    assert item["text"]["text"].startswith(
        f"*👎 with a reason* on <https://slack.com/archives/{GENERAL}/p"
    )
    # The question is not repeated: it may come from a channel the admin is not in, and
    # Slack shows the linked answer only to the channel's members.
    assert "How do I fix the printer?" not in words
    assert item["accessory"]["text"]["text"] == "Make a golden case"
    assert item["accessory"]["action_id"] == GOLDEN_BUTTON
    # No internal ids, placeholders or reprs in what the admin reads.
    assert f"run:{run_id}" not in words and f"feedback-run-{run_id}" not in words
    assert "<EMAIL" not in words and "None" not in words and "{'" not in words

    click = stack.slack.click_button(
        ADMIN, GENERAL, view.ts, GOLDEN_BUTTON, value=item["accessory"]["value"]
    )
    assert click.status == 200
    (update,) = click.wait_for_responses(timeout=30)
    assert update.ok and update.ephemeral is not None
    shown = stack.slack.workspace.ephemeral_message(ADMIN, view.ts)
    added = _item(shown, marker)
    assert "accessory" not in added  # nothing left to click for it
    after = shown.blocks or []
    note = after[after.index(added) + 1]["elements"][0]["text"]
    team = stack.slack.workspace.team.id
    assert f"Added to the golden-set candidates by <@{ADMIN}>" in note
    assert f"`chatops golden saved --tenant {team}" in note and "To accept it" in note

    row = db.execute(
        "SELECT origin, created_by FROM golden_candidates WHERE tenant_id = %s AND source = %s",
        (tenant, f"run:{run_id}"),
    ).fetchone()
    assert row == {"origin": "thumbs_down", "created_by": ADMIN}
    audit = db.execute(
        """SELECT subject FROM audit_log WHERE tenant_id = %s AND actor = %s
             AND action = 'golden.candidate_added' ORDER BY id DESC LIMIT 1""",
        (tenant, ADMIN),
    ).fetchone()
    assert audit is not None and audit["subject"].startswith("a 👎 answer (")

    # The same candidate the CLI makes from all feedback, personal data masked.
    (saved,) = [c for c in golden_saved_cli(stack.env, team) if c["id"] == f"feedback-run-{run_id}"]
    (printed,) = [
        c for c in golden_candidates_cli(stack.env, team) if c["id"] == f"feedback-run-{run_id}"
    ]
    assert saved["request"] == printed["request"]
    assert saved["candidate"]["reasons"] == printed["candidate"]["reasons"]
    (stored_reason,) = saved["candidate"]["reasons"]
    assert marker in stored_reason and "jane.doe@example.com" not in stored_reason

    # Shown again later, the item says it was added, with no button.
    again = _item(_feedback_view(stack, ADMIN), marker)
    assert "accessory" not in again


def test_a_rejection_becomes_a_candidate_and_a_former_admin_is_refused(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """A rejected action (with its reason) is offered too. Someone who opened the view as
    an app admin but is no longer one is refused on click, and nothing is made."""
    text = f"Everyone gets Friday off ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_reject")
    modal = wait_for(lambda: stack.slack.last_view(APPROVER), message="the reject modal")
    reason = f"Not decided yet ({new_marker(6)})"
    stack.slack.submit_view(APPROVER, modal.id, {"reject_reason": {"text": reason}})
    wait_for_status(db, proposal.action["id"], "rejected")
    review = wait_for(
        lambda: db.execute(
            "SELECT id FROM reviewer_feedback WHERE action_id = %s AND reason = %s",
            (proposal.action["id"], reason),
        ).fetchone(),
        message="the rejection and its reason to be stored",
    )

    # An approver's edit of another proposal is offered as well.
    edited_text = f"Standup moves to 10:30am ({new_marker(6)})"
    edited = propose_post(stack.slack, llm, db, f"Standup moves ({new_marker(6)})")
    stack.slack.react_as_user(APPROVER, APPROVALS, edited.approval.ts, "pencil2")
    wait_for(lambda: action_row(db, edited.action["id"])["edit_requested_by"] == APPROVER)
    stack.slack.post_as_user(APPROVER, APPROVALS, edited_text, thread_ts=edited.approval.ts)
    wait_for(lambda: action_row(db, edited.action["id"])["edited_by"] == APPROVER)

    admin_command(stack.slack, GENERAL, f"admins add <@{APPROVER}>")
    try:
        view = _feedback_view(stack, APPROVER)
    finally:
        admin_command(stack.slack, GENERAL, f"admins remove <@{APPROVER}>")
    item = _item(view, reason)
    assert item["text"]["text"].startswith(f"*Rejected* by <@{APPROVER}>")
    # Newest first: the first edit listed is this one (other tests' edits may follow).
    edit_item = next(
        b
        for b in view.blocks or []
        if b["type"] == "section" and "Edited before approval" in b["text"]["text"]
    )
    assert edit_item["text"]["text"].startswith(f"*Edited before approval* by <@{APPROVER}>")
    assert edit_item["accessory"]["text"]["text"] == "Make a golden case"

    refused = stack.slack.click_button(
        APPROVER, GENERAL, view.ts, GOLDEN_BUTTON, value=item["accessory"]["value"]
    )
    (answer,) = refused.wait_for_responses()
    assert answer.ephemeral is not None
    assert "Only workspace admins and this app's admins can make golden cases." in (
        answer.ephemeral.text
    )
    source = f"review:{review['id']}"
    assert (
        db.execute("SELECT 1 FROM golden_candidates WHERE source = %s", (source,)).fetchone()
        is None
    )

    view = _feedback_view(stack, ADMIN)
    item = _item(view, reason)
    click = stack.slack.click_button(
        ADMIN, GENERAL, view.ts, GOLDEN_BUTTON, value=item["accessory"]["value"]
    )
    click.wait_for_responses(timeout=30)
    made = db.execute(
        "SELECT origin, candidate FROM golden_candidates WHERE tenant_id = %s AND source = %s",
        (tenant, source),
    ).fetchone()
    assert made is not None and made["origin"] == "approval_rejection"
    assert made["candidate"]["expect"] == {"actions_proposed": []}
    assert made["candidate"]["candidate"]["reason"] == reason
