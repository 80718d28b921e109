"""Periodic work runs in the workers, whatever listeners are deployed: with no
`chatops serve` at all (a Socket Mode deployment's listener down, say), approvals still
expire and requests stored while Redis was down are still answered."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from testbed.markers import new_marker
from tests.faults.conftest import FaultStack
from tests.review.conftest import propose_post, wait_for_status
from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for


def test_an_unanswered_approval_expires_with_no_listener_running(faults: FaultStack, llm) -> None:
    """The expiry sweep needs only a worker: past its deadline the action expires and the
    requester's thread is told."""
    text = f"Nobody will approve this ({new_marker(6)})"
    with faults.connect() as db:
        proposal = propose_post(faults.slack, llm, db, text)
        faults.serve.stop()
        db.execute(
            "UPDATE pending_actions SET expires_at = now() - interval '1 second' WHERE id = %s",
            (proposal.action["id"],),
        )

        wait_for_status(db, proposal.action["id"], "expired", timeout=20)

    told = wait_for(
        lambda: [
            m
            for m in faults.slack.thread(GENERAL, proposal.thread_ts)
            if "Nobody approved" in m.text
        ],
        message="the requester to be told",
    )
    assert len(told) == 1


def test_a_request_stored_while_redis_was_down_is_answered_with_no_listener_running(
    worker_only: FaultStack, llm
) -> None:
    """A mention the listener stored but could not queue (left 'received') is queued by
    a worker's sweep and answered, though no listener runs any more."""
    question = unique_question("Is the lift working again?")
    script_answer(llm, question, "Yes, since this morning.")
    message = worker_only.slack.workspace.post_message(
        GENERAL, user=REQUESTER, text=f"<@{worker_only.slack.bot_user_id}> {question}"
    )
    envelope = worker_only.slack.dispatcher.builder.envelope(
        {
            "type": "app_mention",
            "user": REQUESTER,
            "text": message.text,
            "ts": message.ts,
            "channel": GENERAL,
            "event_ts": message.ts,
        }
    )
    with worker_only.connect() as db:
        db.execute(
            """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload)
               SELECT tenant_id, 'slack', %s, 'app_mention', %s
               FROM slack_installations WHERE team_id = %s""",
            (
                envelope["event_id"],
                Jsonb(envelope),
                worker_only.slack.workspace.team.id,
            ),
        )

    answer = wait_for_answer(worker_only.slack, message.ts, timeout=30)
    assert answer.text.startswith("Yes, since this morning.")
