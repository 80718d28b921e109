"""External actions wait in the approval channel; a person's reaction decides them.

Real serve and worker processes, Postgres, Redis, and the Slack emulator: reactions are
signed reaction_added events, exactly as Slack sends them.
"""

from __future__ import annotations

import threading
import time

from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    REQUESTER,
    action_row,
    audit_actions,
    posts_in_support,
    propose_post,
    thread_texts,
    wait_for_status,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

QUIET = 2.0  # seconds we watch for something that must not happen


def unique(text: str) -> str:
    return f"{text} ({new_marker(6)})"


def test_nothing_happens_before_approval_and_approval_runs_it_once(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The post waits in #approvals with its prompts; an approver's ✅ posts it exactly once,
    and the requester's thread hears that it was done."""
    text = unique("The status page is back to green.")
    proposal = propose_post(stack.slack, llm, db, text)
    assert posts_in_support(stack.slack, text) == []
    assert {r.name for r in proposal.approval.reactions} >= {"white_check_mark", "pencil2", "x"}
    assert "Approval needed" in proposal.approval.text
    assert proposal.action["requested_by"] == REQUESTER

    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")

    done = wait_for_status(db, proposal.action["id"], "executed")
    assert done["decided_by"] == APPROVER
    assert len(posts_in_support(stack.slack, text)) == 1
    wait_for(lambda: any("and done" in t for t in thread_texts(stack.slack, proposal.thread_ts)))
    approval = stack.slack.workspace.message(APPROVALS, proposal.approval.ts)
    assert "Approved and done" in approval.text
    assert audit_actions(db, proposal.action["id"]) == [
        "action.requested",
        "action.approved",
        "action.executing",
        "action.executed",
    ]


def test_rejection_with_a_reason_tells_the_requester(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """❌ rejects; the reason given in the approval thread reaches the requester's thread."""
    text = unique("We are giving everyone a 50% discount.")
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "x")
    wait_for_status(db, proposal.action["id"], "rejected")
    stack.slack.post_as_user(
        APPROVER, APPROVALS, "Discounts need finance sign-off.", thread_ts=proposal.approval.ts
    )
    wait_for(
        lambda: any("finance sign-off" in t for t in thread_texts(stack.slack, proposal.thread_ts))
    )
    assert any("rejected" in t for t in thread_texts(stack.slack, proposal.thread_ts))
    time.sleep(QUIET)
    assert posts_in_support(stack.slack, text) == []
    feedback = db.execute(
        "SELECT kind, original, reason FROM reviewer_feedback WHERE action_id = %s",
        (proposal.action["id"],),
    ).fetchone()
    assert feedback == {
        "kind": "reject",
        "original": text,
        "reason": "Discounts need finance sign-off.",
    }


def test_edit_in_the_thread_then_final_approval_posts_the_edited_text(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """✏️ then a reply replaces the text; only the final ✅ runs it, with the edit, and the
    original is kept."""
    text = unique("Maintenance tonight at 10pm.")
    edited = unique("Maintenance tonight at 11pm UTC, about 30 minutes.")
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "pencil2")
    wait_for(lambda: action_row(db, proposal.action["id"])["edit_requested_by"] == APPROVER)
    stack.slack.post_as_user(APPROVER, APPROVALS, edited, thread_ts=proposal.approval.ts)
    row = wait_for(
        lambda: (r := action_row(db, proposal.action["id"]))["edited_by"] == APPROVER and r
    )
    assert row["status"] == "pending"
    assert row["payload"]["text"] == edited and row["original_payload"]["text"] == text
    # The card is edited after the row is stored: wait for it as the approver would
    wait_for(
        lambda: (
            "needs a final" in stack.slack.workspace.message(APPROVALS, proposal.approval.ts).text
        )
    )

    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, edited)) == 1
    assert posts_in_support(stack.slack, text) == []
    wait_for(lambda: any("as edited" in t for t in thread_texts(stack.slack, proposal.thread_ts)))


def test_reactions_from_people_who_are_not_approvers_are_ignored(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Someone outside the approvers reacting ✅ changes nothing and is told why, privately."""
    text = unique("Office closed on Friday.")
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.react_as_user(REQUESTER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for(
        lambda: "action.decision_ignored" in audit_actions(db, proposal.action["id"]),
        message="the ignored decision in the audit log",
    )
    assert action_row(db, proposal.action["id"])["status"] == "pending"
    # The note follows the audit record in the same job: waited for, not read at once.
    wait_for(
        lambda: any(
            "not one of this workspace's approvers" in n.text
            for n in stack.slack.workspace.ephemeral_messages(user=REQUESTER)
        ),
        message="the private note to the person who reacted",
    )
    assert posts_in_support(stack.slack, text) == []


def test_four_eyes_rule_stops_self_approval(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """With four-eyes on, a requester who is also an approver cannot approve their own action."""
    db.execute(
        "INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by) VALUES (%s, %s, 'test')",
        (tenant, REQUESTER),
    )
    db.execute("UPDATE tenant_settings SET four_eyes = true WHERE tenant_id = %s", (tenant,))
    text = unique("Self-approved announcement.")
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.react_as_user(REQUESTER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for(lambda: "action.decision_ignored" in audit_actions(db, proposal.action["id"]))
    assert action_row(db, proposal.action["id"])["status"] == "pending"
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for_status(db, proposal.action["id"], "executed")


def test_removing_the_approval_before_it_runs_withdraws_it(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """While the tenant is paused an approved action is held; removing the ✅ withdraws it, so
    resuming runs nothing."""
    text = unique("Held while paused.")
    proposal = propose_post(stack.slack, llm, db, text)
    db.execute("UPDATE tenant_settings SET paused = true WHERE tenant_id = %s", (tenant,))
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for(
        lambda: (
            (r := action_row(db, proposal.action["id"]))["status"] == "approved"
            and "action.approved" in audit_actions(db, r["id"])
            and r["queued_at"] is None
        ),
        message="the approval held while paused",
    )
    stack.slack.unreact_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for_status(db, proposal.action["id"], "pending")
    db.execute("UPDATE tenant_settings SET paused = false WHERE tenant_id = %s", (tenant,))
    time.sleep(QUIET)
    assert posts_in_support(stack.slack, text) == []
    assert "action.approval_withdrawn" in audit_actions(db, proposal.action["id"])


def test_two_approvers_at_once_lead_to_one_execution(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Two approvers reacting ✅ at the same moment post the message once."""
    db.execute(
        "INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by) VALUES (%s, 'U0ADMIN', 'test')",
        (tenant,),
    )
    text = unique("Both approved this.")
    proposal = propose_post(stack.slack, llm, db, text)
    barrier = threading.Barrier(2)

    def react(user: str) -> None:
        barrier.wait()
        stack.slack.react_as_user(user, APPROVALS, proposal.approval.ts, "white_check_mark")

    threads = [threading.Thread(target=react, args=(u,)) for u in (APPROVER, "U0ADMIN")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for_status(db, proposal.action["id"], "executed")
    time.sleep(QUIET)
    assert len(posts_in_support(stack.slack, text)) == 1
    assert audit_actions(db, proposal.action["id"]).count("action.executed") == 1


def test_a_slack_retry_of_the_reaction_runs_it_once(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Slack redelivering the same reaction_added event does not run the action again."""
    text = unique("Retried reaction.")
    proposal = propose_post(stack.slack, llm, db, text)
    deliveries = stack.slack.react_as_user(
        APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark"
    )
    envelope = deliveries[0].envelope
    for retry in (1, 2):
        assert stack.slack.deliver(envelope, retry_num=retry)[0] == 200
    wait_for_status(db, proposal.action["id"], "executed")
    time.sleep(QUIET)
    assert len(posts_in_support(stack.slack, text)) == 1
