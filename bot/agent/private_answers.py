"""Answers only the asker sees (channels set to `visibility=private`, and Slack Connect
channels by default): an ephemeral message in the thread with a "Share with channel"
button, which posts the answer publicly once (bot/intake/channel_listeners.py).

The answer is stored before it is shown, so the button can share exactly what the asker
saw. Slack cannot look an ephemeral message up again, so unlike public replies there is
no way to find one a crashed worker posted: a retry after a crash between posting and
recording may show the asker the answer twice, which only they see.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from slack_sdk import WebClient

SHARE_ACTION = "share_private_answer"
SHARE_BLOCK = "private_answer_share"
PRIVATE_NOTE = "_Only you can see this answer._"


def answer_blocks(text: str, answer_id: int) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": PRIVATE_NOTE}]},
        {
            "type": "actions",
            "block_id": SHARE_BLOCK,
            "elements": [
                {
                    "type": "button",
                    "action_id": SHARE_ACTION,
                    "text": {"type": "plain_text", "text": "Share with channel"},
                    "value": str(answer_id),
                }
            ],
        },
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
) -> str:
    """Show the run's answer to the asker only; returns the ephemeral message's ts."""
    row = conn.execute(
        """INSERT INTO private_answers
             (tenant_id, run_id, slack_channel_id, slack_thread_ts, asked_by, text)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (run_id) DO UPDATE SET text = EXCLUDED.text
           RETURNING id, ephemeral_ts""",
        (tenant_id, run_id, channel, thread_ts, asker, text),
    ).fetchone()
    assert row is not None
    if row["ephemeral_ts"]:
        return str(row["ephemeral_ts"])  # shown by an earlier attempt of this run
    response = client.chat_postEphemeral(
        channel=channel,
        user=asker,
        thread_ts=thread_ts,
        text=text,
        blocks=answer_blocks(text, row["id"]),
    )
    ts = str(response["message_ts"])
    conn.execute(
        "UPDATE private_answers SET ephemeral_ts = %s WHERE id = %s AND tenant_id = %s",
        (ts, row["id"], tenant_id),
    )
    return ts
