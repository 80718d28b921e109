"""Slash commands, buttons, modals and response_urls, driven through a real Bolt app over HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.background import BackgroundServer
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_events import sign
from sandbox.slack_interactivity import InteractionError, encode_form

CORPORA = (Path(__file__).resolve().parents[2] / "../shared/corpora/slack").resolve()

SUPPORT = "C0SUPPORT"
APPROVALS = "C0APPROVALS"
REQUESTER = "U0REQUESTER"
APPROVER = "U0APPROVER"
BOT = "U0SANDBOT"
WAIT = 5.0  # seconds

APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "section",
        "block_id": "summary",
        "text": {"type": "mrkdwn", "text": "Riley wants to refund order 1042."},
    },
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": "req-42",
            },
            {
                "type": "button",
                "action_id": "reject",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": "req-42",
            },
        ],
    },
]


def edit_modal(request_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "edit_modal",
        "private_metadata": request_id,
        "title": {"type": "plain_text", "text": "Approve with changes"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "reason_input"},
            },
            {
                "type": "input",
                "block_id": "amount",
                "label": {"type": "plain_text", "text": "Amount"},
                "element": {
                    "type": "static_select",
                    "action_id": "amount_select",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Full"}, "value": "full"},
                        {"text": {"type": "plain_text", "text": "Half"}, "value": "half"},
                    ],
                },
            },
        ],
    }


def corpus(relative: str) -> Any:
    path = CORPORA / relative
    if not path.exists():
        pytest.skip(f"Slack corpora not available at {CORPORA}")
    return path.read_text()


def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@dataclass
class Seen:
    """What the Bolt app's listeners received, filled from the app's thread."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)  # ts of chat.postMessage answers
    done: threading.Event = field(default_factory=threading.Event)


def build_bolt_app(slack: SlackEmulator, seen: Seen, signing_secret: str) -> AsyncApp:
    bolt = AsyncApp(
        signing_secret=signing_secret,
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
    )

    @bolt.command("/agent")
    async def on_command(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        seen.commands.append(command)
        text = command["text"]
        if text == "announce":
            await ack()
            await respond(text="Checking quietly…")
            await respond(text="The VPN is back.", response_type="in_channel")
        elif text == "post":
            await ack()
            posted = await client.chat_postMessage(channel=command["channel_id"], text="Slow")
            seen.posted.append(posted["ts"])
        else:
            await ack(f"Got it: {text}")
        seen.done.set()

    @bolt.action("approve")
    async def on_approve(ack: Any, body: dict[str, Any], client: Any, respond: Any) -> None:
        await ack()
        seen.actions.append(body)
        modal = edit_modal(body["actions"][0]["value"])
        await client.views_open(trigger_id=body["trigger_id"], view=modal)
        await respond(replace_original=True, text="Avery is approving this.")
        seen.done.set()

    @bolt.action("rate")
    async def on_rate(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.actions.append(body)

    @bolt.view("edit_modal")
    async def on_edit(ack: Any, view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        if not values["reason"]["reason_input"]["value"]:
            await ack(response_action="errors", errors={"reason": "Say why."})
            return
        seen.submissions.append(view)
        await ack()

    return bolt


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def seen(slack: SlackEmulator) -> Iterator[Seen]:
    """A real Bolt app serving /slack/events, with its listeners' observations."""
    observed = Seen()
    server = BackgroundServer(build_bolt_app(slack, observed, slack.signing_secret).web_app())
    slack.events_url = server.start() + "/slack/events"
    yield observed
    server.stop()


@pytest.fixture
def client(slack: SlackEmulator) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.api_url)


def post_approval(client: WebClient) -> str:
    posted = client.chat_postMessage(channel=APPROVALS, text="Approve?", blocks=APPROVAL_BLOCKS)
    return str(posted["ts"])


# -- slash commands ----------------------------------------------------------------------------


def test_form_encoding_and_signature_match_slacks_published_example() -> None:
    """Our form encoder and signer reproduce Slack's signed slash-command example byte for byte."""
    body = corpus("slack-docs/slash_command_signed_body.txt")
    vector = json.loads(corpus("slack-docs/slash_command_signed_body.vector.json"))
    fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    timestamp = int(vector["headers"]["X-Slack-Request-Timestamp"])

    assert encode_form(fields) == body
    assert sign(vector["signing_secret"], timestamp, body) == vector["headers"]["X-Slack-Signature"]


def test_slash_command_is_verified_and_its_ack_comes_back(slack: SlackEmulator, seen: Seen) -> None:
    """Bolt accepts the signed command and its ack text is returned and shown to the person."""
    result = slack.run_slash_command(REQUESTER, SUPPORT, "reset my VPN token")

    assert result.status == 200
    assert result.response == {"text": "Got it: reset my VPN token"}
    (command,) = seen.commands
    assert command["command"] == "/agent" and command["text"] == "reset my VPN token"
    assert command["user_id"] == REQUESTER and command["channel_id"] == SUPPORT
    assert command["channel_name"] == "support" and command["user_name"] == "riley"
    assert command["trigger_id"] == result.trigger_id
    slack_fields = json.loads(
        corpus("java-slack-sdk_json-logs/app-backend/SlashCommandPayload.json")
    )
    # enterprise_id/enterprise_name are only sent from an Enterprise Grid org.
    assert set(command) == set(slack_fields) - {"enterprise_id", "enterprise_name"}
    (shown,) = slack.workspace.ephemeral_messages(REQUESTER)
    assert shown.text == "Got it: reset my VPN token" and shown.channel == SUPPORT


def test_app_with_another_signing_secret_refuses_the_command(slack: SlackEmulator) -> None:
    """A Bolt app holding a different signing secret answers our command with 401."""
    server = BackgroundServer(build_bolt_app(slack, Seen(), "not-the-secret").web_app())
    slack.events_url = server.start() + "/slack/events"
    try:
        result = slack.run_slash_command(REQUESTER, SUPPORT, "hello")
    finally:
        server.stop()

    assert result.status == 401 and slack.workspace.ephemeral_messages() == []


def test_respond_lands_at_response_url_and_is_shown(slack: SlackEmulator, seen: Seen) -> None:
    """respond() posts reach the response_url: ephemeral by default, in_channel as a bot message."""
    result = slack.run_slash_command(REQUESTER, SUPPORT, "announce")

    private, public = result.wait_for_responses(2)

    assert result.status == 200 and result.response is None
    assert private.ok and private.body == {"text": "Checking quietly…"}
    assert private.ephemeral is not None and private.ephemeral.user == REQUESTER
    assert public.ok and public.body is not None and public.body["response_type"] == "in_channel"
    (message,) = slack.history(SUPPORT)
    assert message.text == "The VPN is back." and message.user == BOT
    assert public.message is not None and public.message.ts == message.ts
    assert [m.text for m in slack.workspace.ephemeral_messages(REQUESTER)] == ["Checking quietly…"]


def test_response_url_refuses_a_sixth_post(slack: SlackEmulator, seen: Seen) -> None:
    """A response_url takes five posts; the sixth is refused with used_url and shows nothing."""
    result = slack.run_slash_command(REQUESTER, SUPPORT, "status")
    assert result.response_url is not None
    answers = []
    for i in range(6):
        request = urllib.request.Request(
            result.response_url,
            data=json.dumps({"text": f"update {i}"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request) as response:
                answers.append((response.status, response.read().decode()))
        except urllib.error.HTTPError as refused:
            answers.append((refused.code, refused.read().decode()))

    assert answers == [(200, "ok")] * 5 + [(404, "used_url")]
    assert len(slack.workspace.ephemeral_messages(REQUESTER)) == 1 + 5  # the ack, then five


# -- buttons -----------------------------------------------------------------------------------


def test_button_click_reaches_the_action_listener(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """A click delivers Slack's block_actions payload, and respond(replace_original) edits it."""
    ts = post_approval(client)
    stored = slack.workspace.message(APPROVALS, ts).to_slack()

    result = slack.click_button(APPROVER, APPROVALS, ts, "approve")
    (update,) = result.wait_for_responses(1)

    assert result.status == 200
    (body,) = seen.actions
    (action,) = body["actions"]
    assert action["action_id"] == "approve" and action["block_id"] == "decision"
    assert action["value"] == "req-42" and action["text"]["text"] == "Approve"
    assert action["type"] == "button" and action["style"] == "primary"
    assert body["user"]["id"] == APPROVER and body["user"]["username"] == "avery"
    assert body["channel"] == {"id": APPROVALS, "name": "approvals"}
    assert body["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": APPROVALS,
        "is_ephemeral": False,
    }
    assert body["message"] == stored and body["response_url"] == result.response_url
    slack_payload = json.loads(
        corpus("java-slack-sdk_json-logs/app-backend/BlockActionPayload.json")
    )
    assert set(body) <= set(slack_payload)
    assert set(action) <= set(slack_payload["actions"][0])
    assert update.ok and update.message is not None
    replaced = slack.workspace.message(APPROVALS, ts)
    assert replaced.text == "Avery is approving this." and replaced.blocks is None


def test_button_in_an_ephemeral_message(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """A click in an ephemeral message is marked is_ephemeral, and replace_original rewrites it."""
    ts = client.chat_postEphemeral(
        channel=APPROVALS, user=APPROVER, text="Approve?", blocks=APPROVAL_BLOCKS
    )["message_ts"]

    result = slack.click_button(APPROVER, APPROVALS, ts, "approve")
    (update,) = result.wait_for_responses(1)

    (body,) = seen.actions
    assert body["container"]["is_ephemeral"] is True and "message" not in body
    assert body["actions"][0]["block_id"] == "decision"
    assert update.ok and update.ephemeral is not None
    (shown,) = slack.workspace.ephemeral_messages(APPROVER)
    assert shown.ts == ts and shown.text == "Avery is approving this." and shown.blocks is None


RATING_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Refunds take five days."}},
    {
        "type": "context_actions",
        "block_id": "rating",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": "rate",
                "positive_button": {
                    "text": {"type": "plain_text", "text": "👍"},
                    "value": "good-7",
                },
                "negative_button": {
                    "text": {"type": "plain_text", "text": "👎"},
                    "value": "bad-7",
                },
            }
        ],
    },
]


def test_feedback_buttons_click_sends_the_clicked_sides_value(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """Slack's context_actions block is accepted, and a click on its 👎 reaches the app as
    a feedback_buttons action carrying the negative button's value and text."""
    ts = client.chat_postMessage(
        channel=SUPPORT, text="Refunds take five days.", blocks=RATING_BLOCKS
    )["ts"]

    result = slack.click_button(REQUESTER, SUPPORT, ts, "rate", value="bad-7")

    assert result.status == 200
    (body,) = seen.actions
    (action,) = body["actions"]
    assert action["type"] == "feedback_buttons" and action["block_id"] == "rating"
    assert action["value"] == "bad-7" and action["text"]["text"] == "👎"
    assert body["message"]["blocks"][1]["type"] == "context_actions"
    with pytest.raises(InteractionError, match="good-7"):
        slack.click_button(REQUESTER, SUPPORT, ts, "rate")  # which side was clicked?


def test_a_malformed_context_actions_block_is_refused(client: WebClient) -> None:
    """Slack refuses feedback buttons missing a side, or elements it cannot hold there."""
    broken = json.loads(json.dumps(RATING_BLOCKS))
    del broken[1]["elements"][0]["negative_button"]
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=SUPPORT, text="x", blocks=broken)
    assert refused.value.response["error"] == "invalid_blocks"
    assert "negative_button" in refused.value.response["response_metadata"]["messages"][0]
    button_inside = [{"type": "context_actions", "elements": [APPROVAL_BLOCKS[1]["elements"][0]]}]
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.chat_postMessage(channel=SUPPORT, text="x", blocks=button_inside)


def test_clicking_a_missing_button_is_a_clear_error(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """Clicking an action_id the message does not have raises, naming the ones it has."""
    ts = post_approval(client)

    with pytest.raises(InteractionError) as failure:
        slack.click_button(APPROVER, APPROVALS, ts, "escalate")

    assert "'escalate'" in str(failure.value) and "approve" in str(failure.value)
    assert seen.actions == []


# -- modals ------------------------------------------------------------------------------------


def test_modal_opened_by_a_click_can_be_submitted(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """A modal opened with the click's trigger_id is submitted; errors keep it open, ack closes it."""
    ts = post_approval(client)
    slack.click_button(APPROVER, APPROVALS, ts, "approve")
    wait_until(lambda: slack.last_view(APPROVER))
    modal = slack.last_view(APPROVER)
    assert modal is not None and modal.callback_id == "edit_modal"

    refused = slack.submit_view(APPROVER, modal.id, {"reason": {"reason_input": ""}})
    still_open = slack.last_view(APPROVER)
    accepted = slack.submit_view(
        APPROVER,
        modal.id,
        {"reason": {"reason_input": "Loyal customer"}, "amount": {"amount_select": "half"}},
    )

    assert refused.response == {"response_action": "errors", "errors": {"reason": "Say why."}}
    assert still_open is not None and still_open.id == modal.id
    assert accepted.status == 200 and accepted.response is None
    (view,) = seen.submissions
    values = view["state"]["values"]
    assert values["reason"]["reason_input"] == {
        "type": "plain_text_input",
        "value": "Loyal customer",
    }
    assert values["amount"]["amount_select"]["selected_option"]["value"] == "half"
    assert view["private_metadata"] == "req-42" and view["id"] == modal.id
    assert slack.last_view(APPROVER) is None
    slack_payload = json.loads(
        corpus("java-slack-sdk_json-logs/app-backend/ViewSubmissionPayload.json")
    )
    payload_keys = set(accepted.payload) - {"response_urls"}  # in Slack's docs, not the sample
    assert payload_keys <= set(slack_payload)
    assert set(accepted.payload["view"]) - {"blocks"} <= set(slack_payload["view"])


def test_submitting_an_unknown_input_is_a_clear_error(
    slack: SlackEmulator, seen: Seen, client: WebClient
) -> None:
    """Submitting a value for an input the modal lacks raises instead of sending it."""
    slack.click_button(APPROVER, APPROVALS, post_approval(client), "approve")
    wait_until(lambda: slack.last_view(APPROVER))
    modal = slack.last_view(APPROVER)
    assert modal is not None

    with pytest.raises(InteractionError) as failure:
        slack.submit_view(APPROVER, modal.id, {"reason": {"typo_input": "x"}})

    assert "reason.typo_input" in str(failure.value) and seen.submissions == []


# -- latency fault -----------------------------------------------------------------------------


def test_delayed_response_applies_the_effect_first(slack: SlackEmulator, seen: Seen) -> None:
    """With chat.postMessage delayed, the message and its event exist before the caller hears."""
    slack.delay_response("chat.postMessage", 1.0)

    slack.run_slash_command(REQUESTER, SUPPORT, "post")
    wait_until(lambda: slack.history(SUPPORT))
    (message,) = slack.history(SUPPORT)
    wait_until(lambda: slack.deliveries("message"))
    answered_while_held = bool(seen.posted)

    assert seen.done.wait(WAIT)
    assert not answered_while_held and seen.posted == [message.ts]
    assert slack.deliveries("message")[0].envelope["event"]["ts"] == message.ts
    assert slack.calls("chat.postMessage")[0].held_for == 1.0


def test_held_response_is_dropped_when_the_emulator_stops() -> None:
    """Stopping the emulator drops a held response instead of answering it late."""
    slack = SlackEmulator()
    slack.start()
    slack.delay_response("chat.postMessage", 60.0)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(
                WebClient(slack.bot_token, slack.api_url).chat_postMessage(
                    channel=SUPPORT, text="held"
                )
            )
        except Exception as error:  # whatever a dropped connection raises
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: slack.history(SUPPORT))
    slack.stop()
    caller.join(WAIT)

    assert not caller.is_alive()
    (result,) = outcome
    assert isinstance(result, Exception) and not isinstance(result, SlackApiError)
    assert [m.text for m in slack.history(SUPPORT)] == ["held"]


# -- people and groups -------------------------------------------------------------------------


def test_users_info_marks_the_admin(client: WebClient) -> None:
    """users.info reports is_admin/is_owner for the sandbox admin and not for the requester."""
    admin = client.users_info(user="U0ADMIN")["user"]
    requester = client.users_info(user=REQUESTER)["user"]

    assert admin["is_admin"] is True and admin["is_owner"] is True
    assert requester["is_admin"] is False and requester["is_owner"] is False


def test_usergroups_users_list(client: WebClient) -> None:
    """usergroups.users.list gives the approvers group's user IDs; unknown groups fail."""
    members = client.usergroups_users_list(usergroup="S0APPROVERS")

    with pytest.raises(SlackApiError) as failure:
        client.usergroups_users_list(usergroup="S0NOPE")

    assert members.data == {"ok": True, "users": [APPROVER]}
    assert failure.value.response["error"] == "no_such_subteam"
