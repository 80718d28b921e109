"""Which unmentioned messages count as questions in an every-question channel."""

from __future__ import annotations

import pytest

from bot.intake.channel_questions import is_top_level_person_message, looks_like_question


@pytest.mark.parametrize(
    "text",
    [
        "how do I reset my VPN token?",
        "How do I reset my VPN token",
        "is the staging database down",
        "<@U0AVERY> can someone approve my expense?",
        "anyone know where the on-call rota lives",
        "what's the refund window? :thinking_face:",
        "refund window?",
    ],
)
def test_questions_are_recognised(text: str) -> None:
    """A question mark at the end, or a question word opening three words or more."""
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    ["thanks!", "Thanks, that worked :tada:", "how come", "deploying now", "", "<@U0AVERY>"],
)
def test_chatter_is_left_alone(text: str) -> None:
    """Thanks, statements and fragments are not for the agent."""
    assert not looks_like_question(text)


def test_only_top_level_messages_by_people_start_a_question() -> None:
    """Thread replies, edits and bot posts never open a new question."""
    assert is_top_level_person_message({"ts": "1.0", "text": "why?"})
    assert is_top_level_person_message({"ts": "1.0", "thread_ts": "1.0", "text": "why?"})
    assert not is_top_level_person_message({"ts": "2.0", "thread_ts": "1.0"})
    assert not is_top_level_person_message({"ts": "1.0", "subtype": "message_changed"})
    assert not is_top_level_person_message({"ts": "1.0", "bot_id": "B1"})
