"""A Slack @mention becomes exactly one threaded draft, through the whole real pipeline.

Each test runs against `chatops serve` and `chatops worker` as child processes, real
Postgres and Redis, the Slack emulator (signed Events API requests in, Web API calls
out) and the OpenAI emulator, reached through the real openai client.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from sandbox.openai_script import Failure, Garbage, Hang
from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
QUIET_PERIOD = 2.0  # seconds we watch for a reply that must not come


def request_row(db: DB, event_id: str) -> dict[str, Any] | None:
    return db.execute(
        "SELECT * FROM inbound_requests WHERE external_id = %s", (event_id,)
    ).fetchone()


def test_mention_becomes_exactly_one_threaded_draft(stack: Stack, llm, db: DB) -> None:
    """The bot answers in the mention's thread once, having shown a placeholder first."""
    question = unique_question("What is our refund window?")
    script_answer(llm, question, "Refunds are accepted within 30 days.")

    post = mention(stack.slack, question)
    assert [d.status for d in post.deliveries] == [200]

    answer = wait_for_answer(stack.slack, post.message.ts)
    assert answer.text == "Refunds are accepted within 30 days."
    assert answer.thread_ts == post.message.ts
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    # The placeholder was posted first and then replaced, not a second message.
    posts = [
        c
        for c in stack.slack.calls("chat.postMessage")
        if c.params.get("thread_ts") == post.message.ts
    ]
    assert len(posts) == 1
    assert posts[0].params["text"].startswith(":hourglass")

    event_id = post.deliveries[0].event_id
    request = wait_for(lambda: (r := request_row(db, event_id)) and r["status"] == "done" and r)
    run = db.execute("SELECT * FROM agent_runs WHERE request_id = %s", (request["id"],)).fetchone()
    assert run is not None and run["status"] == "answered" and run["reply_ts"] == answer.ts
    kinds = [
        r["kind"]
        for r in db.execute(
            "SELECT kind FROM agent_steps WHERE run_id = %s ORDER BY position", (run["id"],)
        )
    ]
    assert kinds == ["plan", "retrieve", "draft", "verify"]
    usage = db.execute(
        "SELECT provider, outcome, prompt_tokens, completion_tokens, tenant_id FROM llm_usage"
        " WHERE run_id = %s ORDER BY id",
        (run["id"],),
    ).fetchall()
    assert [(u["provider"], u["outcome"]) for u in usage] == [("primary", "ok"), ("primary", "ok")]
    assert all(u["prompt_tokens"] > 0 and u["tenant_id"] == run["tenant_id"] for u in usage)


def test_slack_retry_of_the_same_event_gets_no_second_reply(stack: Stack, llm, db: DB) -> None:
    """A redelivered event (same event_id, X-Slack-Retry-Num) is acknowledged and ignored."""
    question = unique_question("Who owns the billing system?")
    script_answer(llm, question, "The payments team owns billing.")

    post = mention(stack.slack, question)
    envelope = post.deliveries[0].envelope
    status, _ = stack.slack.deliver(envelope, retry_num=1)
    assert status == 200
    wait_for_answer(stack.slack, post.message.ts)
    status, _ = stack.slack.deliver(envelope, retry_num=2)
    assert status == 200

    time.sleep(QUIET_PERIOD)
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    count = db.execute(
        "SELECT count(*) AS n FROM inbound_requests WHERE external_id = %s",
        (envelope["event_id"],),
    ).fetchone()
    assert count == {"n": 1}
    # The listener recognised both retries rather than queueing them again.
    duplicates = [
        line
        for line in stack.serve.log_text().splitlines()
        if "request.duplicate" in line and envelope["event_id"] in line
    ]
    assert len(duplicates) == 2


def test_bad_or_stale_signature_is_refused_and_nothing_is_stored(stack: Stack, db: DB) -> None:
    """Requests not signed with our secret, or signed too long ago, get 401 and leave no trace."""
    event = {
        "type": "app_mention",
        "user": REQUESTER,
        "text": f"<@{stack.slack.bot_user_id}> forged",
        "ts": "1700000000.000100",
        "channel": GENERAL,
        "event_ts": "1700000000.000100",
    }
    forged = stack.slack.dispatcher.builder.envelope(event)
    assert stack.slack.deliver(forged, bad_signature=True)[0] == 401
    stale = stack.slack.dispatcher.builder.envelope(event)
    assert stack.slack.deliver(stale, stale=True)[0] == 401
    for envelope in (forged, stale):
        assert request_row(db, envelope["event_id"]) is None


def test_unknown_workspace_is_refused_and_logged(stack: Stack, db: DB) -> None:
    """A correctly signed event from a workspace we have no installation for is not served."""
    event = {
        "type": "app_mention",
        "user": "U0STRANGER",
        "text": f"<@{stack.slack.bot_user_id}> hello from elsewhere",
        "ts": "1700000001.000100",
        "channel": "C0ELSEWHERE",
        "event_ts": "1700000001.000100",
    }
    envelope = stack.slack.dispatcher.builder.envelope(event) | {"team_id": "T0UNKNOWN"}
    envelope["authorizations"] = [{**envelope["authorizations"][0], "team_id": "T0UNKNOWN"}]
    stack.slack.deliver(envelope)
    assert request_row(db, envelope["event_id"]) is None
    wait_for(
        lambda: any(
            "slack.unknown_workspace" in line and "T0UNKNOWN" in line
            for line in stack.serve.log_text().splitlines()
        ),
        timeout=5,
        message="the refusal in the listener's log",
    )
    assert not stack.slack.calls("chat.postMessage") or all(
        c.params.get("channel") != "C0ELSEWHERE" for c in stack.slack.calls("chat.postMessage")
    )


def test_follow_up_in_the_thread_needs_no_mention_and_sees_the_history(stack: Stack, llm) -> None:
    """Once the bot has answered in a thread, a plain reply there is answered with context."""
    question = unique_question("What plan is Acme on?")
    script_answer(llm, question, "Acme is on the Enterprise plan.")
    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)

    follow_up = unique_question("And when does it renew?")
    script_answer(llm, follow_up, "It renews on 1 March.")
    stack.slack.post_as_user(REQUESTER, GENERAL, follow_up, thread_ts=post.message.ts)

    wait_for(
        lambda: (
            [m.text for m in bot_replies(stack.slack, post.message.ts)]
            == ["Acme is on the Enterprise plan.", "It renews on 1 March."]
        ),
        message="one answer per turn",
    )
    draft_request = llm.requests(match=follow_up)[-1]
    contents = [m["content"] for m in draft_request["messages"]]
    assert any(question in c for c in contents)
    assert "Acme is on the Enterprise plan." in contents


def test_messages_from_other_bots_are_ignored(stack: Stack, db: DB) -> None:
    """A bot mentioning us gets no answer, so two bots cannot talk to each other forever."""
    event = {
        "type": "app_mention",
        "user": "U0OTHERBOT",
        "bot_id": "B0OTHERBOT",
        "text": f"<@{stack.slack.bot_user_id}> ping",
        "ts": "1700000002.000100",
        "channel": GENERAL,
        "event_ts": "1700000002.000100",
    }
    envelope = stack.slack.dispatcher.builder.envelope(event)
    assert stack.slack.deliver(envelope)[0] == 200
    assert request_row(db, envelope["event_id"]) is None


def test_garbage_from_the_llm_ends_in_a_clear_apology(stack: Stack, llm, db: DB) -> None:
    """When the model keeps returning unusable output, the user is told, not left waiting."""
    question = unique_question("Summarise the Q3 pipeline")
    llm.script(Garbage("<html>502 Bad Gateway</html>", repeat=True), match=question)
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)
    assert "couldn't complete" in answer.text
    assert "could not use" in answer.text
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    event_id = post.deliveries[0].event_id
    wait_for(lambda: (r := request_row(db, event_id)) and r["status"] == "failed")


def test_primary_llm_500_falls_back_to_the_next_provider(
    stack: Stack, llm, llm_fallback, db: DB
) -> None:
    """A primary provider failing with 500 is retried, then the fallback provider answers."""
    question = unique_question("What is the SLA for P1 tickets?")
    llm.script(Failure(500, "primary is down", repeat=True), match=question)
    script_answer(llm_fallback, question, "P1 tickets get a response within 1 hour.")
    post = mention(stack.slack, question)
    assert (
        wait_for_answer(stack.slack, post.message.ts).text
        == "P1 tickets get a response within 1 hour."
    )
    providers = db.execute(
        """SELECT u.provider, u.outcome FROM llm_usage u
           JOIN agent_runs r ON r.id = u.run_id JOIN inbound_requests q ON q.id = r.request_id
           WHERE q.external_id = %s ORDER BY u.id""",
        (post.deliveries[0].event_id,),
    ).fetchall()
    assert ("primary", "error") in [(p["provider"], p["outcome"]) for p in providers]
    assert [p["provider"] for p in providers if p["outcome"] == "ok"] == ["fallback", "fallback"]


def test_primary_llm_timeout_falls_back(stack: Stack, llm, llm_fallback) -> None:
    """A primary provider that does not answer in time is abandoned for the fallback."""
    question = unique_question("Where is the VPN guide?")
    llm.script(Hang(30, repeat=True), match=question)
    script_answer(llm_fallback, question, "The VPN guide is in the IT handbook.")
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)
    assert answer.text == "The VPN guide is in the IT handbook."


def test_every_llm_down_ends_in_a_clear_apology(stack: Stack, llm, llm_fallback) -> None:
    """With no provider answering, the user hears that the model service is not responding."""
    question = unique_question("Draft a renewal email")
    llm.script(Failure(503, "overloaded", repeat=True), match=question)
    llm_fallback.script(Failure(503, "overloaded", repeat=True), match=question)
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)
    assert "couldn't complete" in answer.text and "not responding" in answer.text


def test_slack_429_is_waited_out(stack: Stack, llm) -> None:
    """Slack rate-limiting the reply is waited out (Retry-After), and the reply still lands once."""
    question = unique_question("Is the status page green?")
    script_answer(llm, question, "Yes, all systems are operational.")
    stack.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)
    assert answer.text == "Yes, all systems are operational."
    attempts = [
        c
        for c in stack.slack.calls("chat.postMessage")
        if c.params.get("thread_ts") == post.message.ts
    ]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].timestamp - attempts[0].timestamp >= 1.0
    assert len(bot_replies(stack.slack, post.message.ts)) == 1


def test_slack_refusing_the_reply_is_recorded_not_retried(stack: Stack, llm, db: DB) -> None:
    """When Slack says the bot may not post there, the request is marked failed with the reason
    at once, instead of being retried for minutes."""
    question = unique_question("Can you see this channel?")
    script_answer(llm, question, "unused")
    stack.slack.fail_next("chat.postMessage", error="not_in_channel", status=200)
    post = mention(stack.slack, question)
    event_id = post.deliveries[0].event_id
    row = wait_for(lambda: (r := request_row(db, event_id)) and r["status"] == "failed" and r)
    assert "not_in_channel" in row["error"]
    time.sleep(QUIET_PERIOD)
    attempts = [
        c
        for c in stack.slack.calls("chat.postMessage")
        if c.params.get("thread_ts") == post.message.ts
    ]
    assert len(attempts) == 1
    assert bot_replies(stack.slack, post.message.ts) == []
