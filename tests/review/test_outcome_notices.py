"""The note in the requester's thread about an action's outcome appears once, however
often a retried job tries to post it."""

from __future__ import annotations

from connectors.slack.web_client import make_web_client
from review.slack_posts import tell_requester
from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import DB, propose_post, thread_texts
from tests.support.stack import Stack


def test_a_retried_job_does_not_post_the_outcome_twice(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, worker_conn
) -> None:  # type: ignore[no-untyped-def]
    proposal = propose_post(stack.slack, llm, db, f"Notice me ({new_marker(6)})")
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    note = f"Done: {new_marker(6)}"

    tell_requester(worker_conn, client, proposal.action, "executed", note)
    tell_requester(worker_conn, client, proposal.action, "executed", note)

    assert thread_texts(stack.slack, proposal.thread_ts).count(note) == 1


def test_a_note_posted_just_before_a_crash_is_found_not_reposted(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, worker_conn
) -> None:  # type: ignore[no-untyped-def]
    """The worker posted the note and died before recording its ts: the retry finds the
    message by its metadata in the thread."""
    proposal = propose_post(stack.slack, llm, db, f"Crash notice ({new_marker(6)})")
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    note = f"Rejected: {new_marker(6)}"
    tell_requester(worker_conn, client, proposal.action, "rejected", note)
    # As if the process had died between chat.postMessage and recording the ts.
    db.execute(
        "UPDATE action_notices SET posted_ts = NULL WHERE action_id = %s",
        (proposal.action["id"],),
    )

    tell_requester(worker_conn, client, proposal.action, "rejected", note)

    assert thread_texts(stack.slack, proposal.thread_ts).count(note) == 1
