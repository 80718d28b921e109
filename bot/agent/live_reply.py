"""How a run shows itself in Slack while it works: the streamed draft and, in direct
messages and assistant threads, the "is thinking…" status.

Glue between a run (its row, its guardrails) and the Slack pieces in
`connectors.slack.streaming` and `connectors.slack.assistant_status`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from psycopg import Connection

from bot.agent.draft_preview import DraftPreview
from bot.agent.runs import WorkerDeps
from connectors.slack.assistant_status import status_while_working
from connectors.slack.streaming import ReplyWriter
from connectors.slack.threads import SlackThread


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

    def moved(ts: str) -> None:
        # A retried job must edit the streamed message, not the deleted placeholder.
        conn.execute(
            "UPDATE agent_runs SET reply_ts = %s WHERE id = %s AND tenant_id = %s",
            (ts, run_id, tenant_id),
        )

    def screen(text: str) -> str | None:
        # The same output screen as the final answer, on what people would see so far.
        draft = deps.guardrails.screen_draft(tenant_id, str(conversation_id), text)
        return draft.text_for_people if draft.action == "allow" else None

    writer = ReplyWriter(
        thread,
        placeholder_ts,
        recipient_user_id=event.get("user"),
        recipient_team_id=event.get("team") or payload.get("team_id"),
        on_moved=moved,
        screen=screen,
    )
    preview = DraftPreview(writer.show) if deps.llm is not None else None
    return writer, preview


def working_status(thread: SlackThread, event: dict[str, Any]) -> AbstractContextManager[None]:
    """The assistant thread status while the run works; only direct messages (where the
    assistant panel's threads live) have one."""
    if event.get("channel_type") != "im":
        return nullcontext()
    return status_while_working(thread.client, thread.channel, thread.thread_ts)
