"""Feedback on an answer, through the real listener and worker: 👍 / 👎 (with an optional
reason), "wrong or outdated" on a cited source, and "Ask a human"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from slack_sdk import WebClient

from bot.agent.answer_blocks import (
    ACTION_ASK_HUMAN,
    ACTION_RATE,
    ACTION_RATE_DOWN,
    FEEDBACK_BLOCK,
    RATING_BLOCK,
)
from bot.templates.golden import load_golden
from rag.embeddings import LocalEmbedder
from review.answer_feedback import REASON_BLOCK, REASON_INPUT, REASON_VIEW
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_interactivity import InteractionResult
from sandbox.slack_workspace import EphemeralMessage, Message
from testbed.markers import new_marker
from tests.support.channels import admin_command, new_channel
from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.golden import golden_candidates_cli
from tests.support.knowledge import knowledge_base
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
ADMIN = "U0ADMIN"  # a workspace admin in the emulated workspace
HUMAN = "U0APPROVER"  # the person "Ask a human" reaches in these tests


@pytest.fixture
def tenant(stack: Stack, db: DB) -> Iterator[int]:
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    yield row["tenant_id"]
    db.execute(
        "UPDATE tenant_settings SET handoff_target = NULL WHERE tenant_id = %s",
        (row["tenant_id"],),
    )


def answered(stack: Stack, llm: OpenAIEmulator, answer: str = "Restart it twice.") -> Message:
    """Ask a question and return the bot's final answer once its buttons are on it."""
    question = unique_question("How do I fix the printer?")
    script_answer(llm, question, answer)
    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)
    reply: Message = wait_for(
        lambda: next((m for m in bot_replies(stack.slack, post.message.ts) if m.blocks), None),
        message="the answer with its buttons",
    )
    return reply


def run_of(db: DB, reply: Message) -> int:
    row = db.execute("SELECT id FROM agent_runs WHERE reply_ts = %s", (reply.ts,)).fetchone()
    assert row is not None
    return int(row["id"])


def action_ids(message: Message | EphemeralMessage, block_id: str) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks or []
        if block.get("block_id") == block_id
        for element in block["elements"]
    ]


def click_rating(
    stack: Stack, message: Message | EphemeralMessage, side: str, channel: str = GENERAL
) -> InteractionResult:
    """Click the 👍 ("positive") or 👎 ("negative") half of the answer's native feedback
    buttons, as a person would: the emulator sends that half's value."""
    (element,) = [
        element
        for block in message.blocks or []
        if block.get("block_id") == RATING_BLOCK and block["type"] == "context_actions"
        for element in block["elements"]
        if element["type"] == "feedback_buttons"
    ]
    value = element[f"{side}_button"]["value"]
    return stack.slack.click_button(
        REQUESTER, channel, message.ts, element["action_id"], value=value
    )


def test_thumbs_down_reason_is_stored_and_becomes_a_golden_candidate(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, tmp_path: Path
) -> None:
    """👎 opens a modal; the reason typed there is stored with the rating and shows up,
    with the question, in `chatops golden from-feedback`, its personal data masked."""
    reply = answered(stack, llm)
    assert action_ids(reply, RATING_BLOCK) == [ACTION_RATE]  # Slack's own 👍 / 👎
    assert action_ids(reply, FEEDBACK_BLOCK) == [ACTION_ASK_HUMAN]  # no sources cited
    assert reply.text.startswith("Restart it twice.")  # the plain text stays, for notifications
    before = stack.slack.last_view(REQUESTER)

    click = click_rating(stack, reply, "negative")
    assert click.status == 200
    assert click.payload["actions"][0]["type"] == "feedback_buttons"
    modal = wait_for(
        lambda: (v := stack.slack.last_view(REQUESTER)) and v is not before and v,
        message="the 'what was wrong' modal",
    )
    assert modal.callback_id == REASON_VIEW
    marker = new_marker(8)
    reason = f"Restarting does not help ({marker}); ask jane.doe@example.com, she fixed it"
    submitted = stack.slack.submit_view(REQUESTER, modal.id, {REASON_BLOCK: {REASON_INPUT: reason}})
    assert submitted.status == 200

    run_id = run_of(db, reply)
    assert db.execute(
        "SELECT rating, reason FROM answer_ratings WHERE run_id = %s", (run_id,)
    ).fetchall() == [{"rating": "down", "reason": reason}]

    candidates = golden_candidates_cli(stack.env, stack.slack.workspace.team.id)
    mine = [c for c in candidates if c["id"] == f"feedback-run-{run_id}"]
    assert len(mine) == 1
    candidate = mine[0]
    assert candidate["candidate"]["status"] == "candidate"
    assert candidate["candidate"]["origin"] == "thumbs_down"
    assert "How do I fix the printer?" in candidate["request"]
    (stored_reason,) = candidate["candidate"]["reasons"]
    assert marker in stored_reason and "jane.doe@example.com" not in stored_reason
    # Confirming is deleting the marker: until then the golden loader refuses the line.
    unconfirmed = tmp_path / "unconfirmed.jsonl"
    unconfirmed.write_text(json.dumps(candidate) + "\n")
    with pytest.raises(Exception, match="candidate"):
        load_golden(unconfirmed)
    confirmed = tmp_path / "confirmed.jsonl"
    candidate.pop("candidate")
    confirmed.write_text(json.dumps(candidate) + "\n")
    assert load_golden(confirmed)[0].request == candidate["request"]


def test_thumbs_up_twice_is_one_rating_and_a_change_of_mind_replaces_it(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The same person's second 👍 changes nothing; their 👎 afterwards replaces it."""
    reply = answered(stack, llm)
    first = click_rating(stack, reply, "positive")
    click_rating(stack, reply, "positive")
    (thanks,) = first.wait_for_responses()
    assert thanks.ephemeral is not None and "👍" in thanks.ephemeral.text

    run_id = run_of(db, reply)
    ratings = "SELECT slack_user_id, rating FROM answer_ratings WHERE run_id = %s"
    assert db.execute(ratings, (run_id,)).fetchall() == [
        {"slack_user_id": REQUESTER, "rating": "up"}
    ]
    click_rating(stack, reply, "negative")
    assert db.execute(ratings, (run_id,)).fetchall() == [
        {"slack_user_id": REQUESTER, "rating": "down"}
    ]


def test_ask_a_human_notifies_the_configured_person_and_the_bot_steps_back(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """An admin names who takes over; "Ask a human" then mentions them in the thread with
    a summary, once, and the bot leaves later follow-ups in that thread alone."""
    refused = stack.slack.run_slash_command(REQUESTER, GENERAL, f"handoff <@{HUMAN}>")
    assert refused.response is not None and "Only workspace admins" in refused.response["text"]
    set_target = stack.slack.run_slash_command(ADMIN, GENERAL, f"handoff <@{HUMAN}|avery>")
    assert set_target.response is not None and f"<@{HUMAN}>" in set_target.response["text"]

    reply = answered(stack, llm)
    assert reply.thread_ts is not None
    stack.slack.click_button(REQUESTER, GENERAL, reply.ts, ACTION_ASK_HUMAN)
    notice = wait_for(
        lambda: next(
            (m for m in stack.slack.thread(GENERAL, reply.thread_ts) if f"<@{HUMAN}>" in m.text),
            None,
        ),
        message="the handoff notice",
    )
    assert f"<@{REQUESTER}> asked for a person" in notice.text
    assert "How do I fix the printer?" in notice.text  # the summary's first question
    assert "Restart it twice." in notice.text  # and the latest answer

    again = stack.slack.click_button(REQUESTER, GENERAL, reply.ts, ACTION_ASK_HUMAN)
    (told,) = again.wait_for_responses()
    assert told.ephemeral is not None and "already" in told.ephemeral.text
    notices = [m for m in stack.slack.thread(GENERAL, reply.thread_ts) if f"<@{HUMAN}>" in m.text]
    assert len(notices) == 1

    # A follow-up without a mention is now for the person: not even stored as a request.
    follow_up = stack.slack.post_as_user(REQUESTER, GENERAL, "Still broken", reply.thread_ts)
    event_id = follow_up.deliveries[0].event_id
    assert (
        db.execute("SELECT 1 FROM inbound_requests WHERE external_id = %s", (event_id,)).fetchone()
        is None
    )


REFUNDS = """# Refund policy

Hardware can be returned within 45 days of delivery for a full refund.
"""


@pytest.fixture
def handbook(
    tenant: int, database_url: str, embedder: LocalEmbedder, tmp_path: Path
) -> Iterator[str]:
    with knowledge_base(database_url, embedder, tenant, tmp_path, {"refunds.md": REFUNDS}) as name:
        yield name


def test_a_cited_source_can_be_marked_wrong_and_admins_see_it(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, handbook: str
) -> None:
    """Each cited source has a "wrong or outdated" button; a click flags the document for
    the tenant and `/agent feedback` lists it for admins."""
    question = unique_question("How long can hardware be returned?")
    plan = {"intent": "answer", "search_queries": ["hardware return window"], "tool_calls": []}
    answer = {"answer": "Within 45 days of delivery [1].", "citations": ["1"]}
    llm.script(Reply(content=plan), Reply(content=answer), match=question)
    post = mention(stack.slack, question)
    reply = wait_for(
        lambda: next((m for m in bot_replies(stack.slack, post.message.ts) if m.blocks), None),
        message="the answer with its buttons",
    )
    assert action_ids(reply, FEEDBACK_BLOCK) == [ACTION_ASK_HUMAN, "answer_flag_source_1"]
    click_rating(stack, reply, "positive")

    click = stack.slack.click_button(REQUESTER, GENERAL, reply.ts, "answer_flag_source_1")
    (thanks,) = click.wait_for_responses()
    assert thanks.ephemeral is not None and "Refund policy" in thanks.ephemeral.text
    flagged = db.execute(
        """SELECT d.title FROM knowledge_source_flags f
           JOIN knowledge_documents d ON d.id = f.document_id
           WHERE f.tenant_id = %s AND f.slack_user_id = %s""",
        (tenant, REQUESTER),
    ).fetchall()
    assert flagged == [{"title": "Refund policy"}]

    summary = stack.slack.run_slash_command(ADMIN, GENERAL, "feedback").response
    assert summary is not None and "Refund policy: 1 person" in summary["text"]
    refused = stack.slack.run_slash_command(REQUESTER, GENERAL, "feedback").response
    assert refused is not None and "Only workspace admins" in refused["text"]

    # The 👍 becomes a candidate that expects the same source to be cited.
    candidates = golden_candidates_cli(stack.env, stack.slack.workspace.team.id)
    (liked,) = [c for c in candidates if c["id"] == f"feedback-run-{run_of(db, reply)}"]
    assert liked["candidate"]["origin"] == "thumbs_up"
    assert liked["expect"]["cited_sources"] == [liked["passages"][0]["title"]]
    assert "Refund policy" in liked["expect"]["cited_sources"][0]


def test_a_private_answer_is_rated_like_a_public_one(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """An answer only the asker sees carries 👍 / 👎 too (but no "Ask a human", whose
    summary the channel would read); its clicks come from an ephemeral message, without
    the message itself, and are stored against the run."""
    channel = new_channel(stack.slack)
    admin_command(stack.slack, channel, "channel visibility=private")
    question = unique_question("What is my parking spot?")
    script_answer(llm, question, "Spot 12, level 2.")
    asked = stack.slack.post_as_user(REQUESTER, channel, f"<@{stack.slack.bot_user_id}> {question}")

    shown: EphemeralMessage = wait_for(
        lambda: next(
            (
                m
                for m in stack.slack.workspace.ephemeral_messages(REQUESTER)
                if m.channel == channel and m.thread_ts == asked.message.ts and m.blocks
            ),
            None,
        ),
        message="the private answer",
    )
    assert action_ids(shown, RATING_BLOCK) == [ACTION_RATE]
    assert ACTION_ASK_HUMAN not in action_ids(shown, FEEDBACK_BLOCK)

    up = click_rating(stack, shown, "positive", channel)
    assert up.payload["container"]["is_ephemeral"] is True and "message" not in up.payload
    (thanks,) = up.wait_for_responses()
    assert thanks.ephemeral is not None and "👍" in thanks.ephemeral.text

    before = stack.slack.last_view(REQUESTER)
    click_rating(stack, shown, "negative", channel)
    wait_for(
        lambda: (v := stack.slack.last_view(REQUESTER)) and v is not before and v,
        message="the 'what was wrong' modal",
    )
    rated = db.execute(
        """SELECT a.rating FROM answer_ratings a
           JOIN agent_runs r ON r.id = a.run_id
           JOIN inbound_requests q ON q.id = r.request_id
           WHERE q.payload->'event'->>'ts' = %s AND a.slack_user_id = %s""",
        (asked.message.ts, REQUESTER),
    ).fetchall()
    assert rated == [{"rating": "down"}]


def test_plain_rating_buttons_of_older_answers_still_count(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Answers posted before the native feedback buttons have plain 👍 / 👎 buttons; a
    click on one is still stored as that person's rating."""
    reply = answered(stack, llm)
    run_id = run_of(db, reply)
    client = WebClient(token=stack.slack.bot_token, base_url=stack.slack.api_url)
    legacy_blocks = [
        {
            "type": "actions",
            "block_id": FEEDBACK_BLOCK,
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_RATE_DOWN,
                    "text": {"type": "plain_text", "text": "👎 Not helpful"},
                    "value": str(run_id),
                }
            ],
        }
    ]
    client.chat_update(channel=GENERAL, ts=reply.ts, text=reply.text, blocks=legacy_blocks)

    click = stack.slack.click_button(REQUESTER, GENERAL, reply.ts, ACTION_RATE_DOWN)

    assert click.status == 200
    assert db.execute(
        "SELECT rating FROM answer_ratings WHERE run_id = %s AND slack_user_id = %s",
        (run_id, REQUESTER),
    ).fetchall() == [{"rating": "down"}]
