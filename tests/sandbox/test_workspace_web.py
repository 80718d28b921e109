"""What the sandbox page sends for typed text, as Slack's own client would."""

from __future__ import annotations

from sandbox.slack_workspace import SlackWorkspace
from sandbox.workspace_web import slack_text


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
