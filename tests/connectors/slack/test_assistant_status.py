"""The assistant thread's "is thinking…" status, kept up while a run works (real slack_sdk
client against the Slack emulator)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from connectors.slack.assistant_status import WORKING_STATUS, status_while_working
from sandbox.slack_emulator import SlackEmulator

REQUESTER = "U0REQUESTER"


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


def test_the_status_is_refreshed_while_working_and_cleared_after(slack: SlackEmulator) -> None:
    """Slack drops a status after about two minutes, so it is set again until the work
    ends, then cleared."""
    root = slack.workspace.open_assistant_thread(REQUESTER)
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    seen_while_working: list[str] = []

    with status_while_working(client, root.channel, root.ts, refresh_interval=0.1):
        seen_while_working.append(slack.workspace.assistant_status(root.channel, root.ts))
        time.sleep(0.35)

    sent = [c.params["status"] for c in slack.calls("assistant.threads.setStatus")]
    assert seen_while_working == [WORKING_STATUS]
    assert sent[:3] == [WORKING_STATUS] * 3  # the first, then at least two refreshes
    assert sent[-1] == "" and slack.workspace.assistant_status(root.channel, root.ts) == ""
    assert not [t for t in threading.enumerate() if t.name == "assistant-status"]


def test_a_refused_status_does_not_stop_the_work(slack: SlackEmulator) -> None:
    """Without an assistant thread to show it in (here, Slack refuses), the work goes on."""
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    slack.fail_next("assistant.threads.setStatus", error="channel_not_found")
    ran = False
    with status_while_working(client, "C0SUPPORT", "1.000001", refresh_interval=0.05):
        time.sleep(0.1)
        ran = True
    assert ran
    assert len(slack.calls("assistant.threads.setStatus")) == 1  # no refresher was started
