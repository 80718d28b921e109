"""The Bolt app: which Slack events we take, checked and recorded before the ack.

Bolt verifies each request's signature and timestamp (401 otherwise) and authorises the
workspace through `TenantAuthorize`. `process_before_response=True` makes Bolt run our
listener *before* it answers Slack, so the 200 goes out only once the request is in
Postgres. The listeners do nothing slow: one insert, committed; the request is queued
right after the ack (request_queuer.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.intake.assistant_listeners import ASSISTANT_EVENTS, register_assistant_listeners
from bot.intake.channel_listeners import register_channel_listeners
from bot.intake.channel_questions import is_channel_question
from bot.intake.feedback_listeners import register_feedback_listeners
from bot.intake.installations import (
    InstallationCache,
    PostgresInstallationStore,
    PostgresOAuthStateStore,
    TenantAuthorize,
)
from bot.intake.record import answer_unhandled_error, record_request
from bot.intake.request_queuer import RequestQueuer
from connectors.credentials import cipher_from_settings
from core.agent_template import load_templates
from core.correlation import LOG_KEY, new_correlation_id
from core.db import AsyncPool
from core.metrics import Metrics
from core.settings import Settings
from core.store.conversations import bot_has_run_in_slack_thread
from guardrails.at_rest import AtRest
from guardrails.status import configured_lines
from review.actions import load_action, load_action_by_message
from review.authority import Organisation, check_admin
from review.console.context import GuardrailStatus
from review.console.dispatch import run_agent_command
from review.decisions import EMOJI_DECISIONS
from review.email_digest import BUTTON_RELEASE, RELEASE_KIND
from review.golden_cases import GOLDEN_BUTTON, GOLDEN_KIND
from review.handoff import is_handed_off
from review.messages import (
    BUTTON_APPROVE,
    BUTTON_APPROVE_ALWAYS,
    BUTTON_EDIT,
    BUTTON_REASON,
    BUTTON_REJECT,
    EDIT_VIEW,
    REJECT_VIEW,
    clicked_value,
    edit_view,
    reject_view,
)
from review.model_status import model_line

log = structlog.get_logger(__name__)

BOT_SCOPES = [
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "chat:write",
    "reactions:write",
    "users:read",
    "usergroups:read",  # approvers may be given as a user group
    # conversations.info: whether a channel is shared (Slack Connect); conversations.members:
    # whether the person asking for a channel's summary is in it
    "channels:read",
    "groups:read",  # the same for private channels
    "im:history",  # direct messages to the app, and its assistant panel threads
    "assistant:write",  # the panel's status, suggested prompts and titles
    "search:read.public",  # slack_search_messages: assistant.search.context
    "commands",
]
# The Events API events the app listens to; the Slack app manifest must subscribe to them.
SUBSCRIBED_EVENTS = (
    "app_mention",
    "message",
    "reaction_added",
    "reaction_removed",
    *ASSISTANT_EVENTS,
)
# Message subtypes that are a person writing; edits, deletions, joins and bot posts are not.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


def build_slack_app(
    settings: Settings,
    pool: AsyncPool,
    queuer: RequestQueuer,
    at_rest: AtRest | None = None,
    metrics: Metrics | None = None,
) -> AsyncApp:
    installations = InstallationCache(pool)
    oauth_settings = None
    if settings.slack_client_id and settings.slack_client_secret:
        oauth_settings = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=BOT_SCOPES,
            installation_store=PostgresInstallationStore(pool, on_saved=installations.forget),
            state_store=PostgresOAuthStateStore(pool),
        )
    app = AsyncApp(
        # Named, because without a name Bolt takes its caller's file name from
        # inspect.stack(), which reads the source of every frame: a tenth to a third of a
        # second of `chatops serve`'s start.
        name="chatops-agent",
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=AsyncWebClient(base_url=settings.slack_api_url),
        authorize=TenantAuthorize(installations),  # type: ignore[arg-type]  # Bolt takes an AsyncAuthorize; its hint omits it
        oauth_settings=oauth_settings,
        process_before_response=True,
        # Bolt drops events caused by our own bot user; other bots are dropped below.
        ignoring_self_events_enabled=True,
    )
    # An event that could not be stored (Postgres down) gets a quick 503, never a 200.
    app.error(answer_unhandled_error)
    at_rest = at_rest or AtRest(policy_seconds=settings.guardrails_policy_cache_seconds)

    async def record(
        body: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
        kind: str,
        external_id: str | None = None,
    ) -> None:
        await record_request(
            pool,
            queuer,
            tenant_id=context["tenant_id"],
            external_id=external_id or body["event_id"],
            kind=kind,
            payload=body,
            retry_count=_retry_num(request),
            # Set by the HTTP listener for the whole request (bot/intake/http_server.py);
            # Socket Mode has no such hook, so its requests get theirs here.
            correlation_id=context.get(LOG_KEY) or new_correlation_id(),
            at_rest=at_rest,
        )

    async def on_mention(
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        if event.get("bot_id"):
            return  # another bot mentioning us: answering would start a bot-to-bot loop
        await record(body, context, request, "app_mention")

    async def on_message(
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        if not _mentions(event, context.bot_user_id) and await is_channel_question(
            pool, context["tenant_id"], event
        ):
            # A channel set to answer every question (bot/intake/channel_questions.py).
            await record(body, context, request, "channel_question")
            return
        if not _is_person_in_thread(event) or _mentions(event, context.bot_user_id):
            # Mentions arrive again as app_mention, which is where they are handled.
            return
        if await _bot_is_in_thread(pool, context["tenant_id"], event):
            # After "Ask a human" the follow-ups are the person's (review/handoff.py).
            if not await is_handed_off(
                pool, context["tenant_id"], event["channel"], event["thread_ts"]
            ):
                await record(body, context, request, "thread_reply")
        elif await _is_approval_thread(pool, context["tenant_id"], event):
            # An approver's edited text or rejection reason.
            await record(body, context, request, "approval_reply")

    async def on_reaction(
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        emoji = event.get("reaction", "").split("::")[0]
        if emoji in EMOJI_DECISIONS and event.get("user") != context.bot_user_id:
            await record(body, context, request, event["type"])

    credentials = cipher_from_settings(settings)
    guardrail_status = GuardrailStatus(
        configured_lines(settings), settings.guardrails_budget_warn_ratio
    )
    listeners = {
        "app_mention": on_mention,
        "message": on_message,
        "reaction_added": on_reaction,
        "reaction_removed": on_reaction,
    }
    assert set(listeners) | set(ASSISTANT_EVENTS) == set(SUBSCRIBED_EVENTS)
    # First: Bolt runs the first listener an event matches, and direct messages are theirs.
    register_assistant_listeners(app, record)
    for event_type, listener in listeners.items():
        app.event(event_type)(listener)

    @app.action(re.compile(f"^({BUTTON_APPROVE}|{BUTTON_APPROVE_ALWAYS})$"))
    async def on_review_button(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        clicked = body["actions"][0]
        external_id = f"button:{clicked['action_ts']}:{body['user']['id']}"
        await record(body, context, request, "review_button", external_id)
        await ack()

    @app.action(BUTTON_RELEASE)
    async def on_digest_release(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        # Authorised like an approval, by the worker (review/email_digest.py).
        clicked = body["actions"][0]
        external_id = f"button:{clicked['action_ts']}:{body['user']['id']}"
        await record(body, context, request, RELEASE_KIND, external_id)
        await ack()

    @app.action(GOLDEN_BUTTON)
    async def on_golden_case(
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        # Admins only, checked now as `/agent feedback` itself is; the worker makes the
        # candidate and shows the view again (review/golden_cases.py).
        user = body["user"]["id"]
        admin = (
            await check_admin(pool, client, context["tenant_id"], user)
            if _same_organisation(body, context)
            else None
        )
        if admin is None or not admin.allowed:
            await ack()
            reason = (
                admin.reason
                if admin is not None and admin.slack_unavailable
                else "Only workspace admins and this app's admins can make golden cases."
            )
            await respond(reason, response_type="ephemeral", replace_original=False)
            return
        clicked = body["actions"][0]
        external_id = f"button:{clicked['action_ts']}:{user}"
        await record(body, context, request, GOLDEN_KIND, external_id)
        await ack()

    @app.action(BUTTON_EDIT)
    async def on_edit_button(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await ack()
        if not _same_organisation(body, context):
            return  # the submitted edit would be refused anyway: no modal for outsiders
        # The modal must open within Slack's 3-second trigger window, so it opens here;
        # whether the edit counts is decided when it is submitted.
        action = await load_action(
            pool, context["tenant_id"], clicked_value(body["actions"][0]["value"]).action_id
        )
        if action is not None and action["status"] == "pending":
            await client.views_open(trigger_id=body["trigger_id"], view=edit_view(action))

    @app.action(re.compile(f"^({BUTTON_REJECT}|{BUTTON_REASON})$"))
    async def on_reject_button(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await ack()
        if not _same_organisation(body, context):
            return
        # Reject asks for an optional reason first (a modal, opened within the trigger
        # window); submitting it is the rejection. "Add a reason" (after a ❌) opens it too.
        action = await load_action(
            pool, context["tenant_id"], clicked_value(body["actions"][0]["value"]).action_id
        )
        wanted = "pending" if body["actions"][0]["action_id"] == BUTTON_REJECT else "rejected"
        if action is not None and action["status"] == wanted:
            await client.views_open(trigger_id=body["trigger_id"], view=reject_view(action))

    @app.view(REJECT_VIEW)
    async def on_reject_submitted(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        external_id = f"view:{body['view']['id']}:{body.get('trigger_id', body['view']['hash'])}"
        await record(body, context, request, "review_reject", external_id)
        await ack()

    @app.view(EDIT_VIEW)
    async def on_edit_submitted(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        external_id = f"view:{body['view']['id']}:{body.get('trigger_id', body['view']['hash'])}"
        await record(body, context, request, "review_edit", external_id)
        await ack()

    register_channel_listeners(app, pool)
    register_feedback_listeners(app, pool, metrics)
    templates = load_templates(Path(settings.agent_templates_dir))

    @app.command("/agent")
    async def on_agent_command(
        ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        reply = await run_agent_command(
            pool,
            client,
            context["tenant_id"],
            command,
            guardrail_status,
            credentials,
            templates=templates,
            model=model_line(settings),
        )
        if reply.blocks is not None:
            await ack(response_type=reply.response_type, text=reply.text, blocks=reply.blocks)
        else:
            await ack(response_type=reply.response_type, text=reply.text)

    return app


def _same_organisation(body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether the person clicking belongs to the workspace the app is installed in (an
    Enterprise Grid install spans its organisation, and the decision is checked again by
    the worker either way)."""
    if context.is_enterprise_install:
        return True
    organisation = Organisation(context.team_id or "", context.enterprise_id or "", False)
    return organisation.includes((body.get("user") or {}).get("team_id"))


def _retry_num(request: AsyncBoltRequest) -> int:
    # Socket Mode maps its retry_attempt onto the same header as HTTP, so both paths
    # count retries the same way.
    values = request.headers.get("x-slack-retry-num") or ["0"]
    return int(values[0]) if values[0].isdigit() else 0


def _is_person_in_thread(event: dict[str, Any]) -> bool:
    return (
        event.get("subtype") in PERSON_SUBTYPES
        and not event.get("bot_id")
        and bool(event.get("thread_ts"))
        and event.get("thread_ts") != event.get("ts")
    )


def _mentions(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and f"<@{bot_user_id}>" in (event.get("text") or "")


async def _is_approval_thread(pool: AsyncPool, tenant_id: int, event: dict[str, Any]) -> bool:
    return (
        await load_action_by_message(pool, tenant_id, event["channel"], event["thread_ts"])
        is not None
    )


async def _bot_is_in_thread(pool: AsyncPool, tenant_id: int, event: dict[str, Any]) -> bool:
    """Whether the bot has answered in this thread before, so a follow-up is for it."""
    async with pool.connection() as conn:
        return await bot_has_run_in_slack_thread(
            conn, tenant_id, event["channel"], event["thread_ts"]
        )
