"""Answers only the asker sees (channels set to `visibility=private`, and Slack Connect
channels by default): an ephemeral message in the thread with a "Share with channel"
button, which posts the answer publicly once (bot/intake/channel_listeners.py), and the
same 👍 / 👎 and source controls as a public answer, but no "Ask a human" (its summary
would be posted where the channel sees it).

The answer is stored before it is shown, so the button can share exactly what the asker
saw. Slack cannot look an ephemeral message up again, so unlike public replies there is
no way to find one a crashed worker posted: a retry after a crash between posting and
recording may show the asker the answer twice, which only they see.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.agent.answer_blocks import answer_blocks as public_answer_blocks
from bot.agent.answer_blocks import cited_sources, feedback_blocks, note_block

SHARE_ACTION = "share_private_answer"
SHARE_BLOCK = "private_answer_share"
PRIVATE_NOTE = "_Only you can see this answer._"


def answer_blocks(
    text: str, answer_id: int, feedback: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The ephemeral answer: its text, its `feedback` controls if any (the 👍 / 👎 and
    source buttons of bot/agent/answer_blocks.py), the note, then "Share with channel"."""
    share = ButtonElement(
        action_id=SHARE_ACTION,
        text=PlainTextObject(text="Share with channel"),
        value=str(answer_id),
    )
    return [
        SectionBlock(text=MarkdownTextObject(text=text[:3000])).to_dict(),
        *(feedback or []),
        note_block(PRIVATE_NOTE),
        ActionsBlock(block_id=SHARE_BLOCK, elements=[share]).to_dict(),
    ]


def deliver(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    *,
    tenant_id: int,
    run_id: int,
    channel: str,
    thread_ts: str,
    asker: str,
    text: str,
    rated: bool,
) -> str:
    """Show the run's answer to the asker only; returns the ephemeral message's ts.
    A `rated` answer (not a notice) carries the feedback controls, which name the run, so
    a click is stored against it like one on a public answer."""
    sources = cited_sources(conn, tenant_id, run_id, text) if rated else []
    # What the channel will see if the asker shares it: a public answer's blocks.
    public = Jsonb(public_answer_blocks(text, run_id, sources)) if rated else None
    row = conn.execute(
        """INSERT INTO private_answers
             (tenant_id, run_id, slack_channel_id, slack_thread_ts, asked_by, text,
              public_blocks)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (run_id) DO UPDATE
             SET text = EXCLUDED.text, public_blocks = EXCLUDED.public_blocks
           RETURNING id, ephemeral_ts""",
        (tenant_id, run_id, channel, thread_ts, asker, text, public),
    ).fetchone()
    assert row is not None
    if row["ephemeral_ts"]:
        return str(row["ephemeral_ts"])  # shown by an earlier attempt of this run
    feedback = feedback_blocks(run_id, sources, offer_handoff=False) if rated else None
    response = client.chat_postEphemeral(
        channel=channel,
        user=asker,
        thread_ts=thread_ts,
        text=text,
        blocks=answer_blocks(text, row["id"], feedback),
    )
    ts = str(response["message_ts"])
    conn.execute(
        "UPDATE private_answers SET ephemeral_ts = %s WHERE id = %s AND tenant_id = %s",
        (ts, row["id"], tenant_id),
    )
    return ts
