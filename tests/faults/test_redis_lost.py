"""Redis lost with jobs in it: every request and approved action whose job vanished is
queued again by the workers' sweep, and still ends in exactly one reply or one post."""

from __future__ import annotations

import time

from testbed.markers import new_marker
from tests.faults.conftest import APPROVALS, APPROVER, FaultStack
from tests.review.conftest import posts_in_support, propose_post, wait_for_status
from tests.support.conversation import (
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for


def test_mentions_queued_in_a_redis_that_died_each_get_one_reply(faults: FaultStack, llm) -> None:
    """With the worker stopped, three mentions are stored and queued; Redis is killed
    (-9) and comes back empty; once a worker runs, each mention is answered once."""
    faults.worker.stop()
    questions = [unique_question(f"Question {n} about the canteen") for n in range(3)]
    for n, question in enumerate(questions):
        script_answer(llm, question, f"Answer number {n}.")
    posts = [mention(faults.slack, question) for question in questions]
    assert all(p.deliveries[0].status == 200 for p in posts)
    event_ids = [p.deliveries[0].event_id for p in posts]

    def all_in_redis() -> bool:
        # The listener queues a request just after its ack: wait until all three jobs are
        # in Redis, so killing it really loses them.
        with faults.connect() as db:
            statuses = db.execute(
                "SELECT status FROM inbound_requests WHERE external_id = ANY(%s)", (event_ids,)
            ).fetchall()
        return len(statuses) == 3 and all(r["status"] == "queued" for r in statuses)

    wait_for(all_in_redis, timeout=10, message="the three requests queued in Redis")
    faults.redis.kill()
    faults.redis.start()  # empty: the three jobs are gone
    faults.start_worker()

    for n, post in enumerate(posts):
        answer = wait_for_answer(faults.slack, post.message.ts, timeout=60)
        assert answer.text.startswith(f"Answer number {n}.")
    time.sleep(3)  # a few more sweeps: nothing is queued a second time
    for post in posts:
        assert len(bot_replies(faults.slack, post.message.ts)) == 1
    with faults.connect() as db:
        rows = db.execute(
            "SELECT status, requeued FROM inbound_requests WHERE external_id = ANY(%s)",
            ([p.deliveries[0].event_id for p in posts],),
        ).fetchall()
    assert [r["status"] for r in rows] == ["done"] * 3
    assert all(r["requeued"] >= 1 for r in rows)


def test_an_execution_lost_with_its_worker_and_redis_posts_exactly_once(
    faults: FaultStack, llm
) -> None:
    """An approved post is executing (Slack has it, the worker has not heard back) when
    the worker is killed and Redis dies: nothing can redeliver the job, yet the sweep
    queues the execution again, which finds the post by its key instead of repeating it."""
    text = f"Exactly one post after losing Redis ({new_marker(6)})"
    with faults.connect() as db:
        proposal = propose_post(faults.slack, llm, db, text)
        faults.slack.delay_response("chat.postMessage", 30)

        faults.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "white_check_mark")
        wait_for(lambda: posts_in_support(faults.slack, text), message="the post in #support")
        faults.worker.kill()
        faults.redis.kill()
        faults.redis.start()
        faults.start_worker()

        done = wait_for_status(db, proposal.action["id"], "executed", timeout=60)
    time.sleep(2)
    posts = posts_in_support(faults.slack, text)
    assert len(posts) == 1
    assert done["result"]["ts"] == posts[0].ts
