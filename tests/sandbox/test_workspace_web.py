"""What the sandbox page sends for typed text, as Slack's own client would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from sandbox.background import BackgroundServer
from sandbox.mail_sink import MailSink
from sandbox.mailbox import Mailbox
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import SlackWorkspace
from sandbox.workspace_state import Readiness
from sandbox.workspace_web import create_workspace_app, slack_text


def test_typed_mentions_and_channels_become_slack_links() -> None:
    """@name of a person or the bot and #channel become Slack's <@U…> and <#C…|name>."""
    workspace = SlackWorkspace.sandbox()
    text = slack_text(workspace, "@chatops ask @Avery to post in #approvals")
    assert text == "<@U0SANDBOT> ask <@U0APPROVER> to post in <#C0APPROVALS|approvals>"


def test_markup_characters_are_escaped_and_unknown_names_left_alone() -> None:
    """&, < and > are escaped like Slack's client does; unknown @names and #names stay text."""
    workspace = SlackWorkspace.sandbox()
    text = slack_text(workspace, "a < b & c > d, mail bob@example.com, @nobody #nowhere")
    assert text == "a &lt; b &amp; c &gt; d, mail bob@example.com, @nobody #nowhere"


def test_a_typed_web_address_is_sent_as_a_link() -> None:
    """A URL typed in a message goes out as <url>, as Slack's client sends it, so it shows as
    a link; a trailing full stop stays outside it."""
    workspace = SlackWorkspace.sandbox()
    text = slack_text(workspace, "see https://status.example.com/vpn?x=1&y=2.")
    assert text == "see <https://status.example.com/vpn?x=1&amp;y=2>."


def test_the_page_refuses_what_would_reach_the_product_until_it_is_up() -> None:
    """Before the product is ready a post would be delivered to nobody and lost: the page's
    API answers 503 with a sentence for the person; once ready, it goes through."""
    slack = SlackEmulator()
    slack.start()
    outbox = MailSink().start()
    readiness = Readiness()
    page = BackgroundServer(
        create_workspace_app(slack, Mailbox(outbox, "127.0.0.1", 1, "agent@x.example"), readiness)
    )
    url = page.start()
    post = {"user": "U0REQUESTER", "channel": "C0RANDOM", "text": "hello"}
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post_json(f"{url}/api/messages", post)
        assert refused.value.code == 503
        assert "still starting" in json.load(refused.value)["error"]
        assert slack.workspace.history("C0RANDOM") == []

        readiness.ready = True
        assert _post_json(f"{url}/api/messages", post)["ok"] is True
        assert [m.text for m in slack.workspace.history("C0RANDOM")] == ["hello"]
    finally:
        page.stop()
        outbox.stop()
        slack.stop()


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer
