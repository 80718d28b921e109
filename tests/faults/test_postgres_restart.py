"""Postgres restarts: Slack is never told "stored" for an event that is not, and every
acknowledged mention ends in exactly one reply once the database is back."""

from __future__ import annotations

import time

from sandbox.openai_script import Hang, Reply
from tests.faults.conftest import FaultStack
from tests.support.conversation import (
    PLAN,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for

SLACK_ACK_DEADLINE = 3.0  # seconds Slack waits for an answer before it retries
APOLOGY = ":warning: Sorry, I couldn't complete this request"


def wait_for_finished(faults: FaultStack, event_id: str, timeout: float = 60) -> str:
    """The request's final status, once its reply is written and recorded."""

    def finished() -> str | None:
        with faults.connect() as db:
            row = db.execute(
                "SELECT status FROM inbound_requests WHERE external_id = %s", (event_id,)
            ).fetchone()
        return row["status"] if row and row["status"] in ("done", "failed") else None

    status: str = wait_for(finished, timeout=timeout, interval=0.5, message="the request to end")
    return status


def test_serve_refuses_events_it_cannot_store_and_takes_them_once_postgres_is_back(
    faults: FaultStack, llm
) -> None:
    """While Postgres is down an event gets a quick 503 (Slack retries it), never a 200;
    a retry within seconds of Postgres returning is stored and answered, once."""
    question = unique_question("What is the VPN address?")
    script_answer(llm, question, "vpn.example.com")
    faults.postgres.stop()

    post = mention(faults.slack, question)

    refused = post.deliveries[0]
    assert refused.status == 503
    assert refused.elapsed < SLACK_ACK_DEADLINE
    faults.postgres.start()
    back = time.monotonic()

    # Slack retries the same event (same event_id) until it is acknowledged.
    def retried() -> bool:
        status, _ = faults.slack.deliver(refused.envelope, retry_num=1)
        return status == 200

    wait_for(retried, timeout=20, interval=0.5, message="a retry to be acknowledged")
    assert time.monotonic() - back < 10
    answer = wait_for_answer(faults.slack, post.message.ts, timeout=30)
    assert answer.text.startswith("vpn.example.com")
    time.sleep(1)
    assert len(bot_replies(faults.slack, post.message.ts)) == 1


def test_mention_acknowledged_before_a_restart_gets_exactly_one_reply(
    faults: FaultStack, llm
) -> None:
    """A run interrupted by the restart (its connection killed mid-job) ends in one reply,
    the answer or an apology, not in a request left 'queued' for ever."""
    question = unique_question("Which office is open on Sunday?")
    llm.script(
        Reply(content=PLAN),
        Hang(4),
        Reply(content={"answer": "None of them.", "citations": []}, repeat=True),
        match=question,
    )
    post = mention(faults.slack, question)
    assert post.deliveries[0].status == 200
    llm.wait_for_requests(count=2, match=question, timeout=20)

    faults.postgres.stop()
    time.sleep(6)  # the draft comes back while the database is down; retries fail meanwhile
    faults.postgres.start()

    status = wait_for_finished(faults, post.deliveries[0].event_id)
    replies = bot_replies(faults.slack, post.message.ts)
    assert len(replies) == 1
    expected = "None of them." if status == "done" else APOLOGY
    assert replies[0].text.startswith(expected)


def test_apology_survives_a_database_still_down_when_the_retries_run_out(
    faults: FaultStack, llm
) -> None:
    """An outage longer than a run's retries: the failure handler itself waits for the
    database, and the person gets the apology once it is back (not silence)."""
    question = unique_question("Who signs off on travel?")
    llm.script(Reply(content=PLAN), Hang(3), match=question)
    post = mention(faults.slack, question)
    llm.wait_for_requests(count=2, match=question, timeout=20)

    faults.postgres.stop()
    time.sleep(25)  # the run's four tries (2 s each without a connection) all fail
    faults.postgres.start()

    assert wait_for_finished(faults, post.deliveries[0].event_id) == "failed"
    replies = bot_replies(faults.slack, post.message.ts)
    assert len(replies) == 1 and replies[0].text.startswith(APOLOGY)


def test_new_mentions_are_answered_within_seconds_of_postgres_coming_back(
    faults: FaultStack, llm
) -> None:
    """The pools hand out no dead connections after a restart: the first mention after
    it is acknowledged and answered as usual."""
    faults.postgres.stop()
    time.sleep(1)
    faults.postgres.start()
    question = unique_question("Where is the parking?")
    script_answer(llm, question, "Behind building B.")

    started = time.monotonic()
    post = mention(faults.slack, question)

    assert [d.status for d in post.deliveries] == [200]
    answer = wait_for_answer(faults.slack, post.message.ts, timeout=30)
    assert answer.text.startswith("Behind building B.")
    assert time.monotonic() - started < 10
