"""The "Share with channel" button of a private answer (bot/agent/private_answers.py).

The click posts the answer in its thread for everyone, once: the share is claimed with
one guarded UPDATE, so a double click or Slack retrying the request finds it taken and
posts nothing. Only the person who asked may share their answer. The ephemeral message
is then replaced, through the click's response_url, by a note that it was shared.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.answer_blocks import note_block
from bot.agent.private_answers import SHARE_ACTION
from core.db import AsyncPool

log = structlog.get_logger(__name__)

SHARED_NOTE = ":white_check_mark: Shared with the channel."
NOT_YOURS = "Only the person who asked can share this answer."


def register_channel_listeners(app: AsyncApp, pool: AsyncPool) -> None:
    @app.action(SHARE_ACTION)
    async def on_share(
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        answer_id = int(body["actions"][0]["value"])
        user = body["user"]["id"]
        note = await share(pool, client, context["tenant_id"], answer_id, user)
        if note is not None:
            # Shared: the private copy becomes the note. Not theirs: a separate note.
            await respond(text=note, replace_original=note != NOT_YOURS)


async def share(
    pool: AsyncPool, client: AsyncWebClient, tenant_id: int, answer_id: int, user: str
) -> str | None:
    """Post the private answer publicly in its thread, once; returns what the clicker
    should now see in place of the private answer (None: leave it as it is)."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """UPDATE private_answers SET shared_by = %s, shared_at = now()
                   WHERE id = %s AND tenant_id = %s AND asked_by = %s AND shared_at IS NULL
                   RETURNING slack_channel_id, slack_thread_ts, text, public_blocks""",
                (user, answer_id, tenant_id, user),
            )
        ).fetchone()
        if row is None:
            return await _why_not(conn, tenant_id, answer_id, user)
        try:
            shared_by = f"_Shared by <@{user}> from a private answer._"
            blocks = row["public_blocks"]
            if blocks:
                # The answer, the note, then the feedback controls any public answer has.
                at = next((i for i, b in enumerate(blocks) if b["type"] != "section"), len(blocks))
                blocks = [*blocks[:at], note_block(shared_by), *blocks[at:]]
            posted = await client.chat_postMessage(
                channel=row["slack_channel_id"],
                thread_ts=row["slack_thread_ts"],
                text=f"{row['text']}\n\n{shared_by}",
                blocks=blocks or None,
            )
        except Exception:
            # Not posted: release the claim so another click can try again.
            await conn.execute(
                """UPDATE private_answers SET shared_by = NULL, shared_at = NULL
                   WHERE id = %s AND tenant_id = %s""",
                (answer_id, tenant_id),
            )
            raise
        await conn.execute(
            "UPDATE private_answers SET shared_ts = %s WHERE id = %s AND tenant_id = %s",
            (posted["ts"], answer_id, tenant_id),
        )
    log.info("private_answer.shared", answer_id=answer_id)
    return f"{SHARED_NOTE}\n\n{row['text']}"


async def _why_not(conn: Any, tenant_id: int, answer_id: int, user: str) -> str | None:
    row = await (
        await conn.execute(
            "SELECT asked_by, shared_at FROM private_answers WHERE id = %s AND tenant_id = %s",
            (answer_id, tenant_id),
        )
    ).fetchone()
    if row is None:
        return None
    if row["asked_by"] != user:
        return NOT_YOURS
    return None  # already shared: a double click; the first click's note stands
