"""The controls under an answer (bot/agent/answer_blocks.py) and the 👎 modal.

Each click is a few quick queries, stored before the ack like every other request, and
needs no job: the rating, reason or flag is the whole effect. The 👎 modal opens here,
inside Slack's 3-second trigger window. Only people of the tenant's own workspace count
(in a Slack Connect channel, people from other organisations see the buttons too).
Clicks on a private (ephemeral) answer arrive the same way, without the message; the
run id is in each control's value, and replies go to the click's response_url.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.answer_blocks import (
    ACTION_ASK_HUMAN,
    ACTION_FLAG_SOURCE,
    ACTION_RATE,
    ACTION_RATE_DOWN,
    ACTION_RATE_UP,
    parse_rating_value,
)
from core.db import AsyncPool
from core.metrics import Metrics
from rag.source_flags import flag_document
from review.answer_feedback import (
    REASON_VIEW,
    Rating,
    add_reason,
    rate,
    reason_view,
    submitted_reason,
)
from review.handoff import hand_over

log = structlog.get_logger(__name__)

OUTSIDER = "Only people in this workspace can give feedback on its assistant's answers."
THANKS_UP = "Thanks! Your 👍 is noted."
GONE = "That answer is no longer there to rate."


def register_feedback_listeners(
    app: AsyncApp, pool: AsyncPool, metrics: Metrics | None = None
) -> None:
    """`metrics`: where a new 👍 / 👎 is counted by template (the dashboard's quality row)."""

    async def on_rating(
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        rating, run_id = _rating(body)
        rated = await rate(
            pool,
            tenant_id=context["tenant_id"],
            run_id=run_id,
            user=body["user"]["id"],
            rating=rating,
        )
        await ack()
        if rated is not None and rated.new and metrics is not None:
            metrics.count_rating(rated.template, rating)
        if rated is None:
            await respond(
                GONE, response_type="ephemeral", replace_original=False, thread_ts=_thread_of(body)
            )
        elif rating == "up":
            await respond(
                THANKS_UP,
                response_type="ephemeral",
                replace_original=False,
                thread_ts=_thread_of(body),
            )
        else:
            # The click is the rating; the modal only adds an optional reason, so the 👎
            # is kept even if the person closes it.
            channel = (body.get("channel") or {}).get("id", "")
            await client.views_open(
                trigger_id=body["trigger_id"], view=reason_view(run_id, channel)
            )

    # Slack's feedback_buttons element (one action id for both sides), and the plain
    # buttons of answers posted before it, which people may still click.
    for action_id in (ACTION_RATE, ACTION_RATE_UP, ACTION_RATE_DOWN):
        app.action(action_id, middleware=[_members_only])(on_rating)

    @app.view(REASON_VIEW)
    async def on_reason_submitted(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if _in_workspace(body, context):
            run_id, reason = submitted_reason(body["view"])
            if reason.strip():
                await add_reason(
                    pool,
                    tenant_id=context["tenant_id"],
                    run_id=run_id,
                    user=body["user"]["id"],
                    reason=reason,
                )
        await ack()

    @app.action(re.compile(f"^{ACTION_FLAG_SOURCE}_[0-9]+$"), middleware=[_members_only])
    async def on_flag_source(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
    ) -> None:
        value = json.loads(body["actions"][0]["value"])
        title = await flag_document(
            pool,
            tenant_id=context["tenant_id"],
            document_id=int(value["document"]),
            user=body["user"]["id"],
            run_id=int(value["run"]),
        )
        await ack()
        text = (
            f"Thanks: “{title}” is marked as wrong or outdated, and I'll rank it lower here "
            "until it is updated. Admins see it in `/agent feedback`."
            if title is not None
            else "That source is no longer in the knowledge base."
        )
        await respond(
            text, response_type="ephemeral", replace_original=False, thread_ts=_thread_of(body)
        )

    @app.action(ACTION_ASK_HUMAN, middleware=[_members_only])
    async def on_ask_human(
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        handoff = await hand_over(
            pool,
            client,
            tenant_id=context["tenant_id"],
            run_id=_run_id(body),
            user=body["user"]["id"],
        )
        await ack()
        await respond(
            handoff.message,
            response_type="ephemeral",
            replace_original=False,
            thread_ts=_thread_of(body),
        )


def _thread_of(body: dict[str, Any]) -> str | None:
    """The thread the clicked message is in, so the acknowledgement shows there, beside
    the answer, rather than in the channel."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    thread = message.get("thread_ts") or container.get("thread_ts")
    return str(thread) if thread else None


def _run_id(body: dict[str, Any]) -> int:
    return int(body["actions"][0]["value"])


def _rating(body: dict[str, Any]) -> tuple[Rating, int]:
    """(rating, run id) of a click on the native feedback buttons or an older plain one."""
    action = body["actions"][0]
    if action["action_id"] == ACTION_RATE_UP:
        return "up", int(action["value"])
    if action["action_id"] == ACTION_RATE_DOWN:
        return "down", int(action["value"])
    return parse_rating_value(action["value"])


async def _members_only(
    ack: AsyncAck,
    body: dict[str, Any],
    context: AsyncBoltContext,
    respond: AsyncRespond,
    next: Callable[[], Awaitable[None]],  # Bolt passes the rest of the chain by this name
) -> None:
    """Bolt listener middleware: a click from outside the workspace is told so and goes
    no further."""
    if _in_workspace(body, context):
        await next()
        return
    await ack()
    await respond(
        OUTSIDER, response_type="ephemeral", replace_original=False, thread_ts=_thread_of(body)
    )


def _in_workspace(body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether the person belongs to the workspace the app is installed in (Enterprise
    Grid installs span the organisation's workspaces)."""
    user_team = (body.get("user") or {}).get("team_id")
    if context.is_enterprise_install:
        return True
    ok = user_team is not None and user_team == context.team_id
    if not ok:
        log.info("feedback.outsider_refused", team_id=user_team)
    return ok
