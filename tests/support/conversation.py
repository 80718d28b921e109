"""Moved to `testbed.conversation` (benchmarks use it too); kept so existing imports work."""

from testbed.conversation import (
    GENERAL,
    PLAN,
    REQUESTER,
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)

__all__ = [
    "GENERAL",
    "PLAN",
    "REQUESTER",
    "bot_replies",
    "mention",
    "script_answer",
    "unique_question",
    "wait_for_answer",
]
