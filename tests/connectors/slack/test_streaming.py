"""The reply writer against the Slack emulator, with the real slack_sdk client: what
people see while an answer is written, and what stays once it is final."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from connectors.slack.streaming import REPLACED_NOTE, ReplyWriter
from connectors.slack.threads import SlackThread
from sandbox.slack_emulator import SlackEmulator

SUPPORT = "C0SUPPORT"
REQUESTER = "U0REQUESTER"


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


def writer_for(slack: SlackEmulator, **options: object) -> ReplyWriter:
    question = slack.workspace.post_message(SUPPORT, user=REQUESTER, text="VPN?")
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    thread = SlackThread(client, SUPPORT, question.ts)
    placeholder = thread.post("Working on it…")
    return ReplyWriter(
        thread,
        placeholder,
        recipient_user_id=REQUESTER,
        recipient_team_id=slack.workspace.team.id,
        flush_interval=0.0,
        **options,  # type: ignore[arg-type]
    )


def test_only_whole_words_are_streamed_and_the_placeholder_makes_way(slack: SlackEmulator) -> None:
    """A half-written word waits for the next piece; the stream replaces the placeholder."""
    moved: list[str] = []
    writer = writer_for(slack, on_moved=moved.append)
    placeholder = writer.placeholder_ts

    writer.show("Open the por")
    assert writer.shown == "Open the "
    writer.show("Open the portal and")
    final_ts = writer.finish("Open the portal and reset.")

    assert moved == [final_ts] and final_ts != placeholder
    assert slack.workspace.message(SUPPORT, final_ts).text == "Open the portal and reset."
    assert [c.params["markdown_text"] for c in slack.calls("chat.appendStream")] == ["portal "]
    assert [c.params["ts"] for c in slack.calls("chat.delete")] == [placeholder]


def test_a_draft_the_screen_holds_back_is_not_shown_further(slack: SlackEmulator) -> None:
    """Once the output screen withholds the draft, nothing more is streamed, and the final
    text, not continuing what was shown, carries the replacement note."""
    writer = writer_for(slack, screen=lambda text: None if "idiot" in text else text)
    writer.show("You are ")
    writer.show("You are an idiot and ")
    writer.show("You are an idiot and more ")
    ts = writer.finish("I drafted an answer, but it did not pass my checks.")

    assert writer.shown == "You are "
    assert not slack.calls("chat.appendStream")
    assert slack.workspace.message(SUPPORT, ts).text == (
        f"I drafted an answer, but it did not pass my checks.\n\n{REPLACED_NOTE}"
    )


def test_a_stream_slack_already_ended_is_still_made_final(slack: SlackEmulator) -> None:
    """If Slack ended the stream (its lifetime ran out), the final update still lands."""
    writer = writer_for(slack)
    writer.show("Open the ")
    slack.fail_next("chat.stopStream", error="message_not_in_streaming_state")
    ts = writer.finish("Open the portal.", blocks=[{"type": "divider"}])

    message = slack.workspace.message(SUPPORT, ts)
    assert message.text == "Open the portal."
    assert message.blocks is not None and message.blocks[0]["type"] == "divider"


def test_a_replaced_draft_notes_it_above_the_answers_buttons(slack: SlackEmulator) -> None:
    """Slack shows an answer's blocks rather than its text, so the note is a block too,
    between the answer and its buttons."""
    writer = writer_for(slack)
    writer.show("Reset it in the ")
    answer = {"type": "section", "text": {"type": "mrkdwn", "text": "I couldn't find this."}}
    buttons = {"type": "actions", "elements": []}
    ts = writer.finish("I couldn't find this.", blocks=[answer, buttons])

    blocks = slack.workspace.message(SUPPORT, ts).blocks
    assert blocks is not None
    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    assert blocks[1]["elements"][0]["text"] == REPLACED_NOTE
