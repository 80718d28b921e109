"""Direct messages and Slack's assistant side panel, recorded before the ack.

Everything a person writes to the app in a direct message is for the bot (no @mention:
Slack does not even send app_mention there), including every follow-up in an assistant
thread. The panel's own events (a thread opened, the person moved to another channel)
are recorded for the worker too, which sets the suggested prompts and keeps the context
(bot/agent/assistant_panel.py): the listener does one insert and one enqueue, nothing else.

Bolt's `AsyncAssistant` middleware is not used: its default thread-context store reads
and edits messages through the Web API inside the listener, before the ack, and it
answers the panel's events itself, where our rule is "stored and queued, then acked".
"""

from __future__ import annotations

from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

# Events API events of the assistant panel; the app's manifest subscribes to them.
ASSISTANT_EVENTS = ("assistant_thread_started", "assistant_thread_context_changed")
DIRECT_MESSAGE_KIND = "direct_message"
# Message subtypes that are a person writing (as in slack_app.PERSON_SUBTYPES); the panel's
# thread root ("assistant_app_thread") is Slack's, not a question.
PERSON_SUBTYPES = frozenset({None, "file_share"})


class Record(Protocol):
    """Stores a request and queues it (slack_app's `record`)."""

    async def __call__(
        self,
        body: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
        kind: str,
        external_id: str | None = None,
    ) -> None: ...


def register_assistant_listeners(app: AsyncApp, record: Record) -> None:
    """Listen for direct messages and the panel's events. Call it before the app's general
    ``message`` listener: Bolt runs the first listener that matches an event."""

    async def on_direct_message(
        body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        await record(body, context, request, DIRECT_MESSAGE_KIND)

    async def on_panel_event(
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        await record(body, context, request, event["type"])

    app.event("message", matchers=[is_direct_message])(on_direct_message)
    for event_type in ASSISTANT_EVENTS:
        app.event(event_type)(on_panel_event)


async def is_direct_message(event: dict[str, Any]) -> bool:
    """A person writing to the app in their direct-message conversation with it."""
    return (
        event.get("channel_type") == "im"
        and event.get("subtype") in PERSON_SUBTYPES
        and not event.get("bot_id")
    )
