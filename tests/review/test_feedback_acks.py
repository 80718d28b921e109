"""Feedback under an answer is acknowledged where it was given: in the answer's thread,
visible only to whoever clicked; "Ask a human" with nobody set says who can set someone."""

from __future__ import annotations

from bot.agent.answer_blocks import ACTION_ASK_HUMAN
from sandbox.openai_emulator import OpenAIEmulator
from tests.bot.intake.test_feedback_listeners import answered, click_rating
from tests.review.conftest import DB
from tests.support.conversation import GENERAL, REQUESTER
from tests.support.stack import Stack

ADMIN = "U0ADMIN"


def test_a_thumbs_up_is_thanked_in_the_answers_thread(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The 👍 thanks appears in the thread beside the answer, not in the channel."""
    reply = answered(stack, llm)
    assert reply.thread_ts is not None
    (thanks,) = click_rating(stack, reply, "positive").wait_for_responses()
    assert thanks.ephemeral is not None and "👍" in thanks.ephemeral.text
    assert thanks.ephemeral.thread_ts == reply.thread_ts
    assert thanks.ephemeral.user == REQUESTER


def test_ask_a_human_with_nobody_set_names_who_can_set_someone(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """No hand-off target: the asker is told, in the thread, that nobody was asked and
    which admins can choose someone with `/agent handoff`."""
    db.execute("UPDATE tenant_settings SET handoff_target = NULL WHERE tenant_id = %s", (tenant,))
    db.execute(
        "INSERT INTO tenant_admins (tenant_id, slack_user_id, added_by) VALUES (%s, %s, 'test')"
        " ON CONFLICT DO NOTHING",
        (tenant, ADMIN),
    )
    try:
        reply = answered(stack, llm)
        clicked = stack.slack.click_button(REQUESTER, GENERAL, reply.ts, ACTION_ASK_HUMAN)
        (told,) = clicked.wait_for_responses()
    finally:
        db.execute(
            "DELETE FROM tenant_admins WHERE tenant_id = %s AND slack_user_id = %s",
            (tenant, ADMIN),
        )
    assert told.ephemeral is not None
    assert f"<@{ADMIN}>" in told.ephemeral.text
    assert "`/agent handoff @person`" in told.ephemeral.text
    assert "couldn't hand this thread to a person" in told.ephemeral.text
    assert told.ephemeral.thread_ts == reply.thread_ts
