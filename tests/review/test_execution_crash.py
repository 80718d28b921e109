"""A worker killed after the external call, before recording it: the retry does not repeat it."""

from __future__ import annotations

import time

from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    SUPPORT,
    action_row,
    posts_in_support,
    propose_post,
    wait_for_status,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

HELD = 20.0  # seconds Slack's answer to the post is held, long enough to kill the worker


def test_killed_after_posting_the_action_is_not_posted_twice(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Given the post reached Slack but the worker died before hearing back, the retried job
    finds the message by its idempotency key and records it as done."""
    text = f"Posted exactly once ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.delay_response("chat.postMessage", HELD)

    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for(lambda: len(posts_in_support(stack.slack, text)) == 1, message="the post in #support")
    assert action_row(db, proposal.action["id"])["status"] == "executing"
    stack.worker.kill()
    stack.start_worker()

    done = wait_for_status(db, proposal.action["id"], "executed", timeout=60)
    time.sleep(1)
    posts = posts_in_support(stack.slack, text)
    assert len(posts) == 1
    assert done["result"] == {"channel": SUPPORT, "ts": posts[0].ts}
