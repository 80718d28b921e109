"""Slack as a tool: posting in another channel (an external action the model may propose),
and posting a held answer in the requester's own thread (proposed by the screens, never by
the model: a draft they asked a person to check)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from core.tools import ActionContext, ActionRefused, Effect, Tool

ACTION_EVENT_TYPE = "chatops_action"  # message metadata marking what an action posted
HISTORY_SCAN = 200  # recent messages searched when reconciling a retried post
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)
CHANNEL_MENTION = re.compile(r"^<#(?P<id>[CG][A-Z0-9]+)(\|[^>]*)?>$")


class PostToChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="Slack channel id, e.g. C0123ABC")
    text: str = Field(min_length=1, max_length=3000, description="The message to post")

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        mention = CHANNEL_MENTION.match(value.strip())
        return mention.group("id") if mention else value.strip()


class ReplyInThread(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    thread_ts: str
    text: str = Field(min_length=1, max_length=3000)


def _post(
    client: WebClient,
    context: ActionContext,
    arguments: PostToChannel | ReplyInThread,
    key: str,
) -> Any:
    posted_for = f"Posted by the assistant for <@{context.requested_by}>"
    return client.chat_postMessage(
        channel=arguments.channel,
        thread_ts=getattr(arguments, "thread_ts", None),
        text=arguments.text,
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=arguments.text)).to_dict(),
            ContextBlock(elements=[MarkdownTextObject(text=posted_for)]).to_dict(),
        ],
        # The idempotency key travels with the message, so a retry can find it.
        metadata={"event_type": ACTION_EVENT_TYPE, "event_payload": {"key": key}},
        unfurl_links=False,
    )


def _run_post(
    slack_client: Callable[[str], WebClient],
    context: ActionContext,
    arguments: PostToChannel | ReplyInThread,
    key: str,
) -> dict[str, Any]:
    try:
        response = _post(slack_client(context.bot_token), context, arguments, key)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown")
        if error in TRANSIENT_ERRORS:
            raise  # still 'executing': the retry reconciles first, then posts
        raise ActionRefused(f"Slack said {error}") from exc
    return {"channel": arguments.channel, "ts": response["ts"]}


def _find_post(messages: list[dict[str, Any]], channel: str, key: str) -> dict[str, Any] | None:
    for message in messages:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == ACTION_EVENT_TYPE
            and (metadata.get("event_payload") or {}).get("key") == key
        ):
            return {"channel": channel, "ts": message["ts"]}
    return None


def post_to_channel_tool(slack_client: Callable[[str], WebClient]) -> Tool:
    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, PostToChannel)
        return _run_post(slack_client, context, arguments, key)

    def reconcile(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any] | None:
        assert isinstance(arguments, PostToChannel)
        history = slack_client(context.bot_token).conversations_history(
            channel=arguments.channel, limit=HISTORY_SCAN, include_all_metadata=True
        )
        return _find_post(history.get("messages") or [], arguments.channel, key)

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, PostToChannel)
        return f"Post a message in <#{arguments.channel}>"

    return Tool(
        name="post_to_channel",
        description=(
            "Post a message in another Slack channel on the requester's behalf. "
            "Needs a person's approval before it happens."
        ),
        effect=Effect.EXTERNAL,
        arguments=PostToChannel,
        run=run,
        summarize=summarize,
        reconcile=reconcile,
    )


REPLY_IN_THREAD = "reply_in_thread"


def reply_in_thread_tool(slack_client: Callable[[str], WebClient]) -> Tool:
    """The requester's own answer, held back by the screens until a person approves it."""

    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, ReplyInThread)
        return _run_post(slack_client, context, arguments, key)

    def reconcile(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any] | None:
        assert isinstance(arguments, ReplyInThread)
        replies = slack_client(context.bot_token).conversations_replies(
            channel=arguments.channel,
            ts=arguments.thread_ts,
            limit=HISTORY_SCAN,
            include_all_metadata=True,
        )
        return _find_post(replies.get("messages") or [], arguments.channel, key)

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, ReplyInThread)
        return (
            f"Post the assistant's held answer in the requester's thread in <#{arguments.channel}>"
        )

    return Tool(
        name=REPLY_IN_THREAD,
        description="Post an answer the guardrails held for review in its own thread.",
        effect=Effect.INTERNAL,
        arguments=ReplyInThread,
        run=run,
        summarize=summarize,
        reconcile=reconcile,
        offered_to_model=False,
    )
