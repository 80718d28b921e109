"""In a channel set to answer every question (`/agent channel reply=all`), which
top-level messages are questions for the agent, without an @mention.

The test is deliberately simple and cheap, because it runs before Slack's ack on every
message in busy channels: a message is a question when it ends with "?", or starts with
a question word ("how", "can", "is"...) and has at least three words. No model call:
that would add cost and seconds to every "thanks!" and "lunch?"-free chatter, and a
question the test misses is one @mention away. Thanks, greetings and statements are left
alone, so the agent does not talk over people.
"""

from __future__ import annotations

import re
from typing import Any

from core.db import AsyncPool

QUESTION_WORDS = frozenset(
    [
        "how",
        "what",
        "why",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "which",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "is",
        "are",
        "am",
        "was",
        "were",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "anyone",
        "anybody",
        "somebody",
    ]
)
MIN_WORDS_WITHOUT_MARK = 3  # "how come" alone is too thin to act on
# Slack markup that is not words: <@U123>, <#C123|name>, <https://...|text>, :emoji:.
_MARKUP = re.compile(r"<[^>]*>|:[a-z0-9_+\-]+:")
_WORD = re.compile(r"[a-z']+")
# Message subtypes that can open a new question: a person writing, with or without files.
_NEW_QUESTION_SUBTYPES = frozenset({None, "file_share"})


def looks_like_question(text: str) -> bool:
    plain = _MARKUP.sub(" ", text).strip().lower()
    if not plain:
        return False
    if plain.rstrip(" .!)\"'").endswith("?"):
        return True
    words = _WORD.findall(plain)
    return len(words) >= MIN_WORDS_WITHOUT_MARK and words[0] in QUESTION_WORDS


def is_top_level_person_message(event: dict[str, Any]) -> bool:
    return (
        event.get("subtype") in _NEW_QUESTION_SUBTYPES
        and not event.get("bot_id")
        and event.get("thread_ts") in (None, event.get("ts"))
    )


async def is_channel_question(pool: AsyncPool, tenant_id: int, event: dict[str, Any]) -> bool:
    """Whether a message the bot was not mentioned in is a question it should answer."""
    if not is_top_level_person_message(event) or not looks_like_question(event.get("text") or ""):
        return False
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT 1 FROM channel_settings
                   WHERE tenant_id = %s AND slack_channel_id = %s
                     AND reply_mode = 'every_question'""",
                (tenant_id, event.get("channel")),
            )
        ).fetchone()
    return row is not None
