"""Slack rate-limit storms: a run that cannot post ends in one apology once Slack
recovers, without re-reading the thread on every retry."""

from __future__ import annotations

from sandbox.openai_script import Reply
from tests.faults.conftest import FaultStack
from tests.support.channels import new_channel
from tests.support.conversation import (
    PLAN,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for

STORM = 20  # 429s in a row, each asking to wait a second
APOLOGY = ":warning: Sorry, I couldn't complete this request"


def test_twenty_429s_on_posting_end_in_one_apology_when_slack_recovers(
    faults: FaultStack, llm
) -> None:
    """Every try of the run is refused 429 (the client's own waits included) until its
    retries run out; the apology is tried again until Slack takes it: the thread gets
    exactly one message, and the thread was never read back from Slack."""
    question = unique_question("Can I expense a monitor?")
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": "Yes, up to 300 EUR.", "citations": []}, repeat=True),
        match=question,
    )
    faults.slack.fail_next("chat.postMessage", "ratelimited", retry_after=1, times=STORM)
    reads_before = len(faults.slack.calls("conversations.replies"))

    post = mention(faults.slack, question)
    reply = wait_for(
        lambda: next(
            (m for m in bot_replies(faults.slack, post.message.ts) if m.text.startswith(APOLOGY)),
            None,
        ),
        # The run's four tries, then the apology job backing off 2, 4, 8, 16… s while the
        # storm lasts (jobs.APOLOGY_OPTIONS): 30 s on a quiet machine, past 100 s on a
        # loaded one; the fault tests' 300 s budget bounds it.
        timeout=200,
        message="the apology",
    )

    refused = [c for c in faults.slack.calls("chat.postMessage") if c.status == 429]
    assert len(refused) == STORM
    assert [m.ts for m in bot_replies(faults.slack, post.message.ts)] == [reply.ts]
    assert len(faults.slack.calls("conversations.replies")) == reads_before


def test_a_rate_limited_channel_lookup_keeps_answers_public(faults: FaultStack, llm) -> None:
    """Whether a channel is shared is asked again after a 429 rather than guessed: the
    answer lands in the thread for everyone, not privately."""
    channel = new_channel(faults.slack)
    question = unique_question("When is the next all-hands?")
    script_answer(llm, question, "Thursday at 4pm.")
    faults.slack.fail_next("conversations.info", "ratelimited", retry_after=1, times=8)

    post = faults.slack.post_as_user(
        REQUESTER, channel, f"<@{faults.slack.bot_user_id}> {question}"
    )

    answer = wait_for_answer(faults.slack, post.message.ts, timeout=60, channel=channel)
    assert answer.text.startswith("Thursday at 4pm.")
    assert not faults.slack.calls("chat.postEphemeral")
