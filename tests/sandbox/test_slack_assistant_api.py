"""The Slack emulator's streaming messages, assistant-thread methods and panel events,
driven by the real slack_sdk client (and a real HTTP receiver for the events)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import STREAM_LIFETIME

SUPPORT = "C0SUPPORT"
REQUESTER = "U0REQUESTER"
REQUESTER_DM = "D0REQUESTER"


class Clock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slack(clock: Clock) -> Iterator[SlackEmulator]:
    from sandbox.slack_workspace import SlackWorkspace

    with SlackEmulator(SlackWorkspace.sandbox(clock=clock)) as emulator:
        yield emulator


@pytest.fixture
def bot(slack: SlackEmulator) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.api_url)


def question(slack: SlackEmulator, channel: str = SUPPORT) -> str:
    return slack.workspace.post_message(channel, user=REQUESTER, text="how do I reset it?").ts


def test_a_stream_grows_with_each_append_and_ends_with_its_last_text(
    slack: SlackEmulator, bot: WebClient
) -> None:
    """startStream posts in the thread, appendStream adds to it, stopStream closes it."""
    thread_ts = question(slack)
    started = bot.chat_startStream(
        channel=SUPPORT,
        thread_ts=thread_ts,
        markdown_text="Open ",
        recipient_user_id=REQUESTER,
        recipient_team_id=slack.workspace.team.id,
    )
    ts = started["ts"]
    assert started["channel"] == SUPPORT
    bot.chat_appendStream(channel=SUPPORT, ts=ts, markdown_text="the VPN ")
    assert slack.workspace.message(SUPPORT, ts).text == "Open the VPN "
    assert slack.workspace.is_streaming(SUPPORT, ts)

    stopped = bot.chat_stopStream(
        channel=SUPPORT,
        ts=ts,
        markdown_text="portal.",
        blocks=[{"type": "divider"}],
    )
    message = slack.workspace.message(SUPPORT, ts)
    assert message.text == "Open the VPN portal." == stopped["message"]["text"]
    assert message.thread_ts == thread_ts and message.bot_id == slack.workspace.app.bot_id
    assert message.blocks is not None and message.blocks[0]["type"] == "divider"
    assert not slack.workspace.is_streaming(SUPPORT, ts)
    with pytest.raises(SlackApiError) as after_stop:
        bot.chat_appendStream(channel=SUPPORT, ts=ts, markdown_text="more")
    assert after_stop.value.response["error"] == "message_not_in_streaming_state"


def test_a_stream_in_a_channel_must_name_its_recipient(
    slack: SlackEmulator, bot: WebClient
) -> None:
    """Outside DMs Slack wants recipient_user_id and recipient_team_id; a DM does not."""
    with pytest.raises(SlackApiError) as refused:
        bot.chat_startStream(channel=SUPPORT, thread_ts=question(slack), markdown_text="Hi")
    assert refused.value.response["error"] == "invalid_arguments"

    dm_ts = question(slack, REQUESTER_DM)
    ts = bot.chat_startStream(channel=REQUESTER_DM, thread_ts=dm_ts, markdown_text="Hi")["ts"]
    assert slack.workspace.message(REQUESTER_DM, ts).text == "Hi"


def test_a_stream_left_open_ends_after_slacks_lifetime(
    slack: SlackEmulator, bot: WebClient, clock: Clock
) -> None:
    """Appending to a stream older than its lifetime fails, as in Slack."""
    dm_ts = question(slack, REQUESTER_DM)
    ts = bot.chat_startStream(channel=REQUESTER_DM, thread_ts=dm_ts, markdown_text="Hi ")["ts"]
    clock.now += STREAM_LIFETIME + 1
    with pytest.raises(SlackApiError) as expired:
        bot.chat_appendStream(channel=REQUESTER_DM, ts=ts, markdown_text="there")
    assert expired.value.response["error"] == "message_not_in_streaming_state"


def test_assistant_thread_methods_store_what_the_panel_shows(
    slack: SlackEmulator, bot: WebClient
) -> None:
    """setStatus, setSuggestedPrompts and setTitle are kept per thread; people cannot call them."""
    root = slack.workspace.open_assistant_thread(REQUESTER)
    assert root.channel == REQUESTER_DM and root.subtype == "assistant_app_thread"
    prompts = [{"title": "Reset", "message": "How do I reset my VPN token?"}]
    bot.assistant_threads_setSuggestedPrompts(
        channel_id=root.channel, thread_ts=root.ts, title="Try:", prompts=prompts
    )
    bot.assistant_threads_setTitle(channel_id=root.channel, thread_ts=root.ts, title="VPN")
    bot.assistant_threads_setStatus(channel_id=root.channel, thread_ts=root.ts, status="is busy")

    assert slack.workspace.suggested_prompts(root.channel, root.ts) == {
        "title": "Try:",
        "prompts": prompts,
    }
    assert slack.workspace.assistant_title(root.channel, root.ts) == "VPN"
    assert slack.workspace.assistant_status(root.channel, root.ts) == "is busy"
    with pytest.raises(SlackApiError) as bad:
        bot.assistant_threads_setSuggestedPrompts(
            channel_id=root.channel, thread_ts=root.ts, prompts=[{"title": "no message"}]
        )
    assert bad.value.response["error"] == "invalid_arguments"
    person = WebClient(token="xoxp-0sandbox-0requester", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as not_bot:
        person.assistant_threads_setTitle(channel_id=root.channel, thread_ts=root.ts, title="x")
    assert not_bot.value.response["error"] == "not_allowed_token_type"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_opening_the_panel_delivers_the_thread_root_and_assistant_thread_started(
    slack: SlackEmulator,
) -> None:
    """The app hears the root message (subtype assistant_app_thread), then the panel's
    events in Slack's shape, with the channel the person was viewing as context."""
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slack.events_url = f"http://127.0.0.1:{server.server_port}/slack/events"
        opened = slack.open_assistant_thread(REQUESTER, context_channel=SUPPORT)
        slack.change_assistant_context(
            REQUESTER, opened.message.channel, opened.message.ts, "C0GENERAL"
        )
    finally:
        server.shutdown()
    events = [envelope["event"] for envelope in _Receiver.received]
    assert [e["type"] for e in events] == [
        "message",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    ]
    assert events[0]["subtype"] == "assistant_app_thread" and events[0]["channel_type"] == "im"
    started = events[1]["assistant_thread"]
    assert started == {
        "user_id": REQUESTER,
        "context": {
            "channel_id": SUPPORT,
            "team_id": slack.workspace.team.id,
            "enterprise_id": None,
        },
        "channel_id": REQUESTER_DM,
        "thread_ts": opened.message.ts,
    }
    assert events[2]["assistant_thread"]["context"]["channel_id"] == "C0GENERAL"
    assert all(e["event_ts"] for e in events)
