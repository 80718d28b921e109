"""A summary request, run instead of the agent loop: recognise it, check who may see what,
read the messages, summarise, render.

Called by bot/agent/run_request.py for a mention or a panel question (`for_request`),
and by the digests. The answer is posted, rated and stored like any answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from psycopg import Connection
from slack_sdk import WebClient

from bot.agent.loop import Outcome
from bot.summaries import reading
from bot.summaries.render import render
from bot.summaries.request import SummaryRequest, parse_summary_request
from bot.summaries.summarise import summarise
from core.llm.providers import CallRecord
from core.llm.structured import StructuredLLM
from guardrails.facade import Guardrails

log = structlog.get_logger(__name__)

DEFAULT_WINDOW = timedelta(hours=24)  # "what did I miss in #support?" with no date
NO_MODEL = (
    "I can't write summaries right now: no language model is configured for this "
    "workspace. Ask an admin to set one up."
)
NOT_IN_A_THREAD = (
    "To summarise a thread, ask me with a reply inside that thread. To catch up on this "
    'channel, ask "what did I miss here since Monday?".'
)
WHICH_CHANNEL = (
    "Which channel should I summarise? Name it with Slack's # list (so it shows as a "
    "link), or open that channel and ask me here again."
)


@dataclass(frozen=True)
class Asked:
    """Where and by whom a summary was asked."""

    tenant_id: int
    asker: str
    channel: str  # where the answer goes
    thread_ts: str
    request_ts: str  # the request message itself, left out of a thread's summary
    bot_id: str | None
    in_thread: bool  # asked as a reply in a thread, not at the top of the channel
    viewing_channel: str | None = None  # the assistant panel's: what "this channel" means


def time_zone(conn: Connection[dict[str, Any]], tenant_id: int) -> ZoneInfo:
    """The workspace's time zone (tenant_settings.time_zone), UTC when unset or unknown."""
    row = conn.execute(
        "SELECT time_zone FROM tenant_settings WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    name = row["time_zone"] if row else None
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("summary.unknown_time_zone")
        return ZoneInfo("UTC")


def recognise(
    conn: Connection[dict[str, Any]], asked: Asked, question: str
) -> SummaryRequest | None:
    return parse_summary_request(
        question,
        now=datetime.now(UTC),
        zone=time_zone(conn, asked.tenant_id),
        in_thread=asked.in_thread,
    )


def for_request(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    llm: StructuredLLM | None,
    guardrails: Guardrails,
    asked: Asked,
    request: SummaryRequest,
    *,
    conversation_key: str,
    on_call: Callable[[CallRecord], None],
) -> Outcome:
    """The answer to a recognised summary request, refusals included."""
    zone = time_zone(conn, asked.tenant_id)
    if request.unknown_channel:
        return Outcome(
            f"I couldn't find a channel called #{request.unknown_channel}. {WHICH_CHANNEL}",
            "answered",
            "summary: unknown channel",
        )
    in_panel = asked.viewing_channel is not None
    if request.target == "thread" and not in_panel and not asked.in_thread:
        return Outcome(NOT_IN_A_THREAD, "answered", "summary: no thread")
    if request.target == "thread" and not in_panel:
        channel, thread_ts = asked.channel, asked.thread_ts
        heading = "*Summary of this thread*"
    else:
        target = request.channel_id or asked.viewing_channel or asked.channel
        if target.startswith("D"):  # a direct message with the app names no channel
            return Outcome(WHICH_CHANNEL, "answered", "summary: which channel")
        if target != asked.channel or in_panel:
            refused = reading.refusal(
                client, channel=target, asker=asked.asker, reply_channel=asked.channel
            )
            if refused:
                log.info("summary.refused")
                return Outcome(refused, "answered", "summary: not visible to the asker here")
        channel, thread_ts = target, ""
        heading = f"*What happened in <#{target}> {_since_words(request, zone)}*"
    if llm is None:
        return Outcome(NO_MODEL, "answered", "summary: no model")
    if thread_ts:
        messages = reading.thread_messages(
            conn,
            client,
            asked.tenant_id,
            channel=channel,
            thread_ts=thread_ts,
            skip_ts=frozenset({asked.request_ts}),
            bot_id=asked.bot_id,
        )
    else:
        since = request.since or datetime.now(UTC) - DEFAULT_WINDOW
        messages = reading.channel_messages(
            conn, client, asked.tenant_id, channel=channel, since=since, bot_id=asked.bot_id
        )
        messages = [m for m in messages if m.ts != asked.request_ts]  # the question itself
    written = write_summary(
        conn,
        client,
        llm,
        guardrails,
        tenant_id=asked.tenant_id,
        channel=channel,
        messages=messages,
        heading=heading,
        conversation_key=conversation_key,
        on_call=on_call,
    )
    if written.withheld:
        return Outcome(written.text, "failed", "summary withheld by guardrails")
    return Outcome(written.text, "answered", None if messages else "summary: empty")


@dataclass(frozen=True)
class Written:
    text: str  # for people: the summary, or why there is none
    withheld: bool = False  # the draft screen stopped it


def write_summary(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    llm: StructuredLLM,
    guardrails: Guardrails,
    *,
    tenant_id: int,
    channel: str,
    messages: list[reading.ChannelMessage],
    heading: str,
    conversation_key: str,
    on_call: Callable[[CallRecord], None],
) -> Written:
    """The rendered summary of ``messages`` (read from ``channel``), screened as every
    draft is before people see it."""
    zone = time_zone(conn, tenant_id)
    if not messages:
        return Written(f"{heading}\n\nNobody wrote anything there in that time.")
    summary = summarise(
        llm,
        messages,
        zone=zone,
        redact=lambda text: guardrails.redact_for_llm(tenant_id, conversation_key, text),
        on_call=on_call,
    )
    count = f"_{len(messages)} message{'s' if len(messages) != 1 else ''} read._"
    text = render(client, channel, summary, messages, heading=heading, zone=zone)
    screened = guardrails.screen_draft(tenant_id, conversation_key, f"{text}\n\n{count}")
    if screened.action != "allow":
        log.warning("summary.withheld", action=screened.action)
        notice = screened.notice_for_people or "I wrote a summary, but it did not pass my checks."
        return Written(notice, withheld=True)
    log.info("summary.written", messages=len(messages))
    return Written(screened.text_for_people)


def _since_words(request: SummaryRequest, zone: ZoneInfo) -> str:
    """How the heading says the window: "since Monday 7 December", "in the last 3 days"."""
    if request.since is None:
        return "in the last 24 hours"
    said = (request.said_since or "").strip()
    if said.lower().startswith(("in ", "over ", "last", "past")):
        words = said if said.lower().startswith(("in ", "over ")) else f"in the {said}"
        return words.lower()
    return f"since {request.since.astimezone(zone):%A %-d %B}"
