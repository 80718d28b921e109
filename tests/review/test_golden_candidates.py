"""Reviewers' rejections and edits become candidate golden-set entries in
`chatops golden from-feedback`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from psycopg.types.json import Jsonb

from review import feedback
from review.golden_candidates import golden_candidates
from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import APPROVALS, APPROVER, DB, propose_post, wait_for_status
from tests.support.golden import golden_candidates_cli
from tests.support.processes import wait_for
from tests.support.stack import Stack


def test_a_rejected_action_with_its_reason_becomes_a_candidate(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """A rejection, with the reason given in Reject's modal, becomes a candidate that
    expects no action for that request and carries the reason."""
    text = f"Everyone gets a bonus ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_reject")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the reject modal")
    reason = f"We never announce bonuses in #support ({new_marker(6)})"
    stack.slack.submit_view(APPROVER, view.id, {"reject_reason": {"text": reason}})
    wait_for_status(db, proposal.action["id"], "rejected")
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM reviewer_feedback WHERE action_id = %s AND reason = %s",
            (proposal.action["id"], reason),
        ).fetchone(),
        message="the rejection reason to be stored",
    )

    since = (date.today() - timedelta(days=1)).isoformat()
    candidates = golden_candidates_cli(stack.env, stack.slack.workspace.team.id, "--since", since)

    mine = [
        c
        for c in candidates
        if c["candidate"]["origin"] == "approval_rejection" and c["candidate"]["reason"] == reason
    ]
    assert len(mine) == 1
    candidate = mine[0]
    assert candidate["request"] == proposal.question
    assert candidate["expect"] == {"actions_proposed": []}
    assert candidate["candidate"]["tool"] == "post_to_channel"
    assert text in candidate["candidate"]["original"]

    # `--since` leaves out what came before it.
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert (
        golden_candidates_cli(stack.env, stack.slack.workspace.team.id, "--since", tomorrow) == []
    )


def test_an_edited_held_answer_prefills_what_to_say_and_not_say(
    worker_conn: DB, db: DB, tenant: int
) -> None:
    """A reviewer's edit of a held answer turns the lines they added into must_include and
    those they removed into must_not_include; every text passes through the mask."""
    key = new_marker(8)
    conversation = db.execute(
        """INSERT INTO conversations (tenant_id, channel_kind, external_key)
           VALUES (%s, 'slack', %s) RETURNING id""",
        (tenant, f"C0GENERAL:{key}"),
    ).fetchone()
    assert conversation is not None
    db.execute(
        """INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
           VALUES (%s, %s, 'user', 'U0REQUESTER', %s, '1.0')""",
        (tenant, conversation["id"], f"<@U0SANDBOT> when do refunds arrive? {key}"),
    )
    original = "Refunds arrive in 3 days.\nCall us any time."
    corrected = "Refunds arrive in 5 to 7 business days.\nCall us any time."
    action = db.execute(
        """INSERT INTO pending_actions (tenant_id, conversation_id, tool, summary, payload,
             original_payload, requested_by, reason, idempotency_key, expires_at)
           VALUES (%s, %s, 'reply_in_thread', 'held answer', %s, %s, 'U0REQUESTER', 'held',
                   %s, now() + interval '1 day') RETURNING id""",
        (
            tenant,
            conversation["id"],
            Jsonb({"text": corrected}),
            Jsonb({"text": original}),
            f"test:{key}",
        ),
    ).fetchone()
    assert action is not None
    feedback.record(
        worker_conn,
        tenant_id=tenant,
        action_id=action["id"],
        kind="edit",
        original=original,
        corrected=corrected,
    )

    candidates = list(
        golden_candidates(
            worker_conn,
            tenant_id=tenant,
            since=datetime.now(UTC) - timedelta(minutes=5),
            template=None,
            mask=lambda text: text.replace("3 days", "<MASKED>"),
        )
    )

    (mine,) = [
        c for c in candidates if c["candidate"]["origin"] == "approval_edit" and key in c["request"]
    ]
    assert mine["request"] == f"when do refunds arrive? {key}"
    assert mine["expect"] == {
        "must_include": ["Refunds arrive in 5 to 7 business days."],
        "must_not_include": ["Refunds arrive in <MASKED>."],
    }
    assert mine["candidate"]["original"] == "Refunds arrive in <MASKED>.\nCall us any time."
