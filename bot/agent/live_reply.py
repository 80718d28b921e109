"""How a run shows itself in Slack while it works: the streamed draft and, in direct
messages and assistant threads, the "is thinking…" status.

Glue between a run (its row, its guardrails) and the Slack pieces in
`connectors.slack.streaming` and `connectors.slack.assistant_status`.

A run's reply is one message, whatever happens to the worker. The "working on it"
placeholder is found again by its metadata (bot/agent/run_request.py); a stream cannot
carry metadata until it stops, so its start is recorded around chat.startStream
(`agent_runs.stream_intent_at` before, `stream_ts` after). A retried run that finds a
stream recorded, or an intent with no stream recorded (the worker died between Slack
creating the stream and hearing back), closes that stream and finishes the same message
by editing it, instead of starting a second answer and leaving the first "streaming".
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import structlog
from psycopg import Connection
from slack_sdk.errors import SlackApiError

from bot.agent.draft_preview import DraftPreview
from bot.agent.runs import WorkerDeps
from connectors.slack.assistant_status import status_while_working
from connectors.slack.streaming import ReplyWriter
from connectors.slack.threads import SlackThread

log = structlog.get_logger(__name__)

REPLY_EVENT_TYPE = "chatops_reply"  # Slack message metadata marking our reply messages
# How far from the recorded intent (seconds, by Slack's clock against the database's) a
# stream of ours may have started to be taken for this run's.
STREAM_WINDOW = 120.0


def reply_metadata(run_id: int) -> dict[str, Any]:
    return {"event_type": REPLY_EVENT_TYPE, "event_payload": {"run_id": run_id}}


def open_reply(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    request: dict[str, Any],
    thread: SlackThread,
    *,
    run_id: int,
    conversation_id: int,
    placeholder_ts: str,
) -> tuple[ReplyWriter, DraftPreview | None]:
    """The run's reply writer, and the preview that streams drafts into it (None in
    offline mode, where there is no draft to stream)."""
    tenant_id: int = request["tenant_id"]
    payload, event = request["payload"], request["payload"]["event"]
    resumed = _resume_stream(conn, thread, request, run_id, placeholder_ts)

    def intend() -> None:
        conn.execute(
            "UPDATE agent_runs SET stream_intent_at = now() WHERE id = %s AND tenant_id = %s",
            (run_id, tenant_id),
        )

    def refused() -> None:
        conn.execute(
            "UPDATE agent_runs SET stream_intent_at = NULL WHERE id = %s AND tenant_id = %s",
            (run_id, tenant_id),
        )

    def moved(ts: str) -> None:
        # A retried job must edit the streamed message, not the deleted placeholder.
        _record_stream(conn, tenant_id, run_id, ts)

    def screen(text: str) -> str | None:
        # The same output screen as the final answer, on what people would see so far.
        draft = deps.guardrails.screen_draft(tenant_id, str(conversation_id), text)
        return draft.text_for_people if draft.action == "allow" else None

    writer = ReplyWriter(
        thread,
        resumed or placeholder_ts,
        recipient_user_id=event.get("user"),
        recipient_team_id=event.get("team") or payload.get("team_id"),
        before_stream=intend,
        on_moved=moved,
        on_stream_refused=refused,
        screen=screen,
        metadata=reply_metadata(run_id),
        # A message that was streamed into is finished by editing it (a stream cannot be
        # restarted, and a new one would be a second answer).
        mode="update" if resumed else "waiting",
    )
    preview = DraftPreview(writer.show) if deps.llm is not None else None
    return writer, preview


def working_status(thread: SlackThread, event: dict[str, Any]) -> AbstractContextManager[None]:
    """The assistant thread status while the run works; only direct messages (where the
    assistant panel's threads live) have one."""
    if event.get("channel_type") != "im":
        return nullcontext()
    return status_while_working(thread.client, thread.channel, thread.thread_ts)


def _resume_stream(
    conn: Connection[dict[str, Any]],
    thread: SlackThread,
    request: dict[str, Any],
    run_id: int,
    placeholder_ts: str,
) -> str | None:
    """The message an earlier attempt of this run streamed into, closed and made the
    reply, if there is one; None when the run has streamed nothing (the usual case: no
    Slack call is made then)."""
    tenant_id: int = request["tenant_id"]
    row = conn.execute(
        "SELECT stream_intent_at, stream_ts FROM agent_runs WHERE id = %s AND tenant_id = %s",
        (run_id, tenant_id),
    ).fetchone()
    if row is None or (row["stream_ts"] is None and row["stream_intent_at"] is None):
        return None
    stream_ts: str | None = row["stream_ts"]
    if stream_ts is None:
        # Started, maybe, by an attempt that died before hearing back: look for it once.
        stream_ts = _find_unrecorded_stream(
            thread, request["bot_id"], placeholder_ts, row["stream_intent_at"]
        )
        if stream_ts is None:
            conn.execute(
                "UPDATE agent_runs SET stream_intent_at = NULL WHERE id = %s AND tenant_id = %s",
                (run_id, tenant_id),
            )
            return None
        _record_stream(conn, tenant_id, run_id, stream_ts)
        log.warning("reply.stream_recovered", ts=stream_ts)
    client = thread.client
    try:
        # Left open, it would show Slack's "typing" until Slack ends it minutes later.
        client.chat_stopStream(
            channel=thread.channel, ts=stream_ts, metadata=reply_metadata(run_id)
        )
    except SlackApiError as exc:
        log.info("reply.stream_already_stopped", error=exc.response.get("error"))
    if placeholder_ts != stream_ts:
        try:
            # The stream had replaced it; the attempt that died never deleted it.
            client.chat_delete(channel=thread.channel, ts=placeholder_ts)
        except SlackApiError as exc:
            log.info("reply.placeholder_delete_failed", error=exc.response.get("error"))
    return stream_ts


def _find_unrecorded_stream(
    thread: SlackThread, bot_id: str | None, placeholder_ts: str, intent_at: datetime
) -> str | None:
    """Our message in the thread after the placeholder, carrying no metadata (a stream
    gets it only when it stops), started nearest the recorded intent."""
    intent, after = intent_at.timestamp(), float(placeholder_ts)
    candidates = [
        message.ts
        for message in thread.messages(with_metadata=True)
        if message.bot_id is not None
        and message.bot_id == bot_id
        and not message.metadata
        and float(message.ts) > after
        and abs(float(message.ts) - intent) <= STREAM_WINDOW
    ]
    return min(candidates, key=lambda ts: abs(float(ts) - intent), default=None)


def _record_stream(conn: Connection[dict[str, Any]], tenant_id: int, run_id: int, ts: str) -> None:
    conn.execute(
        """UPDATE agent_runs SET reply_ts = %s, stream_ts = %s, stream_intent_at = NULL
           WHERE id = %s AND tenant_id = %s""",
        (ts, ts, run_id, tenant_id),
    )
