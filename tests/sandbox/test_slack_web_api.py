"""The Slack emulator, driven by the real slack_sdk clients and a real Bolt app over HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web import SlackResponse
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.background import BackgroundServer
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_events import EventSubscriptions

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPORA = (REPO_ROOT / "../shared/corpora/slack").resolve()
EXAMPLES = CORPORA / "slack-api-specs_web-api-examples"

SUPPORT = "C0SUPPORT"
REQUESTER = "U0REQUESTER"
BOT = "U0SANDBOT"


def corpus(relative: str) -> Any:
    path = CORPORA / relative
    if not path.exists():
        pytest.skip(f"Slack corpora not available at {CORPORA}")
    return json.loads(path.read_text())


def assert_has_keys(example: dict[str, Any], actual: dict[str, Any], where: str) -> None:
    missing = set(example) - set(actual)
    assert not missing, f"{where}: keys in Slack's example but not in ours: {sorted(missing)}"


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    verified: bool

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny app endpoint that checks Slack signatures the way Bolt does."""

    signing_secret: str
    delays: list[float] = field(default_factory=list)  # seconds to stall each request
    requests: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        verifier = SignatureVerifier(self.signing_secret)
        verified = verifier.is_valid_request(body, dict(request.headers))
        self.requests.append(Received(dict(request.headers), body, verified))
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        if not verified:
            return web.Response(status=401)
        payload = json.loads(body)
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload["challenge"]})
        return web.Response(status=200)


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def client(slack: SlackEmulator) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.api_url)


@pytest.fixture
def receiver(slack: SlackEmulator) -> Iterator[Receiver]:
    endpoint = Receiver(slack.signing_secret)
    app = web.Application()
    app.router.add_post("/slack/events", endpoint.handle)
    server = BackgroundServer(app)
    slack.events_url = server.start() + "/slack/events"
    yield endpoint
    server.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- Web API ---------------------------------------------------------------------------------


def test_thread_round_trip(client: WebClient) -> None:
    """A bot post and its threaded reply read back through conversations.replies as one thread."""
    parent = client.chat_postMessage(channel=SUPPORT, text="How do I reset my VPN token?")
    reply = client.chat_postMessage(channel=SUPPORT, text="Here is how.", thread_ts=parent["ts"])

    replies = client.conversations_replies(channel=SUPPORT, ts=parent["ts"])

    first, second = replies["messages"]
    assert (first["ts"], second["ts"]) == (parent["ts"], reply["ts"])
    assert first["thread_ts"] == parent["ts"] and first["reply_count"] == 1
    assert first["reply_users"] == [BOT] and first["latest_reply"] == reply["ts"]
    assert second["thread_ts"] == parent["ts"] and second["parent_user_id"] == BOT
    assert reply["message"]["bot_id"] == "B0SANDBOT" and reply["message"]["user"] == BOT
    assert replies["has_more"] is False


def test_metadata_only_with_include_all_metadata(client: WebClient) -> None:
    """Message metadata is returned by replies and history only when include_all_metadata is set."""
    metadata = {"event_type": "approval_requested", "event_payload": {"request_id": "r-1"}}
    posted = client.chat_postMessage(channel=SUPPORT, text="Approve?", metadata=metadata)

    plain = client.conversations_replies(channel=SUPPORT, ts=posted["ts"])
    full = client.conversations_replies(channel=SUPPORT, ts=posted["ts"], include_all_metadata=True)
    history = client.conversations_history(channel=SUPPORT, include_all_metadata=True)

    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == metadata
    assert history["messages"][0]["metadata"] == metadata


def test_chat_update_changes_text(client: WebClient, slack: SlackEmulator) -> None:
    """chat.update replaces the text of the bot's message and marks it edited."""
    posted = client.chat_postMessage(channel=SUPPORT, text="Working on it…")

    updated = client.chat_update(channel=SUPPORT, ts=posted["ts"], text="Done.")

    assert updated["text"] == "Done." and updated["ts"] == posted["ts"]
    stored = slack.workspace.message(SUPPORT, posted["ts"])
    assert stored.text == "Done." and stored.edited is not None and stored.edited["user"] == BOT


def test_cannot_update_someone_elses_message(client: WebClient, slack: SlackEmulator) -> None:
    """chat.update on a person's message fails with cant_update_message."""
    post = slack.post_as_user(REQUESTER, SUPPORT, "hello")

    with pytest.raises(SlackApiError) as failure:
        client.chat_update(channel=SUPPORT, ts=post.message.ts, text="edited by bot")

    assert failure.value.response["error"] == "cant_update_message"


def test_not_in_channel_until_joined(client: WebClient) -> None:
    """Posting where the bot is not a member fails with not_in_channel until it joins."""
    with pytest.raises(SlackApiError) as failure:
        client.chat_postMessage(channel="C0RANDOM", text="hi")
    assert failure.value.response["error"] == "not_in_channel"
    assert failure.value.response.status_code == 200

    client.conversations_join(channel="C0RANDOM")

    assert client.chat_postMessage(channel="C0RANDOM", text="hi")["ok"] is True


@pytest.mark.parametrize(
    ("token", "error"), [("xoxb-not-a-real-token", "invalid_auth"), (None, "not_authed")]
)
def test_bad_or_missing_token(slack: SlackEmulator, token: str | None, error: str) -> None:
    """A wrong token gets invalid_auth and a missing one not_authed, both as HTTP 200."""
    client = WebClient(token=token, base_url=slack.api_url)

    with pytest.raises(SlackApiError) as failure:
        client.auth_test()

    assert failure.value.response["error"] == error
    assert failure.value.response.status_code == 200


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_errors_for_missing_things(client: WebClient) -> None:
    """Unknown channels, messages, empty posts and unknown methods fail with Slack's codes."""
    failures: dict[str, Callable[[], object]] = {
        "channel_not_found": lambda: client.chat_postMessage(channel="C0NOPE", text="x"),
        "message_not_found": lambda: client.chat_update(channel=SUPPORT, ts="1.000001", text="x"),
        "no_text": lambda: client.chat_postMessage(channel=SUPPORT),
        "unknown_method": lambda: client.api_call("chat.teleport"),
        "thread_not_found": lambda: client.conversations_replies(channel=SUPPORT, ts="1.000001"),
    }
    for error, call in failures.items():
        with pytest.raises(SlackApiError) as failure:
            call()
        assert failure.value.response["error"] == error


def test_rate_limit_is_waited_out(client: WebClient, slack: SlackEmulator) -> None:
    """A 429 with Retry-After is retried by slack_sdk's RateLimitErrorRetryHandler and succeeds."""
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    slack.fail_next("chat.postMessage", retry_after=1)

    started = time.monotonic()
    response = client.chat_postMessage(channel=SUPPORT, text="after the wait")

    assert response["ok"] is True
    assert time.monotonic() - started >= 1.0
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {"ok": False, "error": "ratelimited"}


def test_injected_error_with_status_200(client: WebClient, slack: SlackEmulator) -> None:
    """fail_next with another error answers it as Slack does, in an HTTP 200, only once."""
    slack.fail_next("auth.test", error="account_inactive")

    with pytest.raises(SlackApiError) as failure:
        client.auth_test()

    assert failure.value.response.status_code == 200
    assert failure.value.response["error"] == "account_inactive"
    assert client.auth_test()["ok"] is True


def test_replies_pagination(client: WebClient) -> None:
    """conversations.replies pages with limit/cursor, has_more and response_metadata.next_cursor."""
    parent = client.chat_postMessage(channel=SUPPORT, text="parent")["ts"]
    replies = [
        client.chat_postMessage(channel=SUPPORT, text=f"r{i}", thread_ts=parent)["ts"]
        for i in range(4)
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = client.conversations_replies(channel=SUPPORT, ts=parent, limit=2, cursor=cursor)
        pages += 1
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break

    assert seen == [parent, *replies] and pages == 3


def test_history_is_newest_first_and_pages(client: WebClient) -> None:
    """conversations.history lists top-level messages newest first and pages with a cursor."""
    posted = [client.chat_postMessage(channel=SUPPORT, text=f"m{i}")["ts"] for i in range(3)]
    client.chat_postMessage(channel=SUPPORT, text="in a thread", thread_ts=posted[0])

    first = client.conversations_history(channel=SUPPORT, limit=2)
    second = client.conversations_history(
        channel=SUPPORT, limit=2, cursor=first["response_metadata"]["next_cursor"]
    )

    assert [m["ts"] for m in first["messages"] + second["messages"]] == posted[::-1]
    assert first["has_more"] is True and second["has_more"] is False


def test_timestamps_strictly_increase(client: WebClient) -> None:
    """Every posted message gets a unique Slack-style ts, strictly increasing."""
    stamps = [client.chat_postMessage(channel=SUPPORT, text=str(i))["ts"] for i in range(20)]

    assert stamps == sorted(stamps, key=lambda ts: tuple(map(int, ts.split("."))))
    assert len(set(stamps)) == len(stamps)
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_reactions(client: WebClient) -> None:
    """Reactions are added and removed once; repeats fail with already_reacted / no_reaction."""
    ts = client.chat_postMessage(channel=SUPPORT, text="react to me")["ts"]

    client.reactions_add(channel=SUPPORT, timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as again:
        client.reactions_add(channel=SUPPORT, timestamp=ts, name="eyes")
    got = client.reactions_get(channel=SUPPORT, timestamp=ts)
    client.reactions_remove(channel=SUPPORT, timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as gone:
        client.reactions_remove(channel=SUPPORT, timestamp=ts, name="eyes")

    assert again.value.response["error"] == "already_reacted"
    assert got["message"]["reactions"] == [{"name": "eyes", "users": [BOT], "count": 1}]
    assert gone.value.response["error"] == "no_reaction"


def test_views_open_update_publish(client: WebClient, slack: SlackEmulator) -> None:
    """Views are stored with IDs: open consumes a trigger once, update needs the current hash."""
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Approve"}, "blocks": []}
    trigger = slack.workspace.issue_trigger_id()

    opened = client.views_open(trigger_id=trigger, view=modal)["view"]
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=trigger, view=modal)
    updated = client.views_update(view_id=opened["id"], view=modal, hash=opened["hash"])["view"]
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=opened["id"], view=modal, hash=opened["hash"])
    home = client.views_publish(user_id=REQUESTER, view={"type": "home", "blocks": []})["view"]

    assert opened["id"].startswith("V") and opened["root_view_id"] == opened["id"]
    assert reused.value.response["error"] == "exchanged_trigger_id"
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert stale.value.response["error"] == "hash_conflict"
    assert home["type"] == "home" and slack.workspace.home_view(REQUESTER) is not None


def test_oauth_v2_access_exchanges_a_code_once(slack: SlackEmulator) -> None:
    """oauth.v2.access turns an issued code into Slack's install response, and only once."""
    app = slack.workspace.app
    code = slack.workspace.issue_oauth_code()
    anonymous = WebClient(base_url=slack.api_url)

    install = anonymous.oauth_v2_access(
        client_id=app.client_id, client_secret=app.client_secret, code=code
    )
    with pytest.raises(SlackApiError) as reused:
        anonymous.oauth_v2_access(
            client_id=app.client_id, client_secret=app.client_secret, code=code
        )

    assert install["access_token"] == app.bot_token and install["token_type"] == "bot"
    assert install["team"] == {"id": "T0SANDBOX", "name": "Sandbox"}
    assert install["bot_user_id"] == BOT and install["authed_user"]["id"] == "U0ADMIN"
    assert reused.value.response["error"] == "invalid_code"


def test_form_query_and_token_param_are_accepted(slack: SlackEmulator) -> None:
    """Form bodies, GET query strings and a token parameter work, and the log keeps params."""
    form = urllib.parse.urlencode(
        {"token": slack.bot_token, "channel": SUPPORT, "text": "form-encoded"}
    ).encode()
    with urllib.request.urlopen(slack.api_url + "chat.postMessage", data=form) as response:
        posted = json.loads(response.read())
    query = urllib.parse.urlencode({"token": slack.bot_token, "user": REQUESTER})
    with urllib.request.urlopen(f"{slack.api_url}users.info?{query}") as response:
        user = json.loads(response.read())

    assert posted["ok"] is True and posted["message"]["text"] == "form-encoded"
    assert user["user"]["id"] == REQUESTER
    post_call, info_call = slack.calls()
    assert post_call.params == {"channel": SUPPORT, "text": "form-encoded"}
    assert post_call.token == slack.bot_token and post_call.http_method == "POST"
    assert info_call.http_method == "GET" and info_call.params == {"user": REQUESTER}


def test_async_web_client(slack: SlackEmulator) -> None:
    """slack_sdk's AsyncWebClient (aiohttp) posts and reads a thread like the sync client."""

    async def scenario() -> list[str]:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        parent = await client.chat_postMessage(channel=SUPPORT, text="async parent")
        await client.chat_postMessage(channel=SUPPORT, text="async reply", thread_ts=parent["ts"])
        replies = await client.conversations_replies(channel=SUPPORT, ts=parent["ts"])
        return [m["text"] for m in replies["messages"]]

    assert asyncio.run(scenario()) == ["async parent", "async reply"]


def test_assistant_thread_status(client: WebClient, slack: SlackEmulator) -> None:
    """assistant.threads.setStatus records the thread's status line in the workspace."""
    ts = slack.post_as_user(REQUESTER, "D0REQUESTER", "help me").message.ts

    client.assistant_threads_setStatus(channel_id="D0REQUESTER", thread_ts=ts, status="is typing…")

    assert slack.workspace.assistant_status("D0REQUESTER", ts) == "is typing…"


# -- shapes against Slack's published examples -------------------------------------------------


def _responses(client: WebClient, slack: SlackEmulator) -> dict[str, dict[str, Any]]:
    """One real response per method that has an example in the corpora."""
    posted = client.chat_postMessage(
        channel=SUPPORT,
        text="Here's a message for you",
        username="ecto1",
        attachments=[{"fallback": "fallback", "text": "an attachment"}],
    )
    ts = posted["ts"]
    client.chat_postMessage(channel=SUPPORT, text="reply", thread_ts=ts)
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
    trigger = slack.workspace.issue_trigger_id()
    calls: dict[str, Callable[[], SlackResponse]] = {
        "auth.test": client.auth_test,
        "chat.postMessage": lambda: posted,
        "chat.update": lambda: client.chat_update(channel=SUPPORT, ts=ts, text="new"),
        "chat.postEphemeral": lambda: client.chat_postEphemeral(
            channel=SUPPORT, user=REQUESTER, text="psst"
        ),
        "chat.getPermalink": lambda: client.chat_getPermalink(channel=SUPPORT, message_ts=ts),
        "conversations.replies": lambda: client.conversations_replies(channel=SUPPORT, ts=ts),
        "conversations.history": lambda: client.conversations_history(channel=SUPPORT),
        "conversations.info": lambda: client.conversations_info(channel=SUPPORT),
        "users.info": lambda: client.users_info(user=REQUESTER),
        "users.lookupByEmail": lambda: client.users_lookupByEmail(email="riley@sandbox.example"),
        "reactions.add": lambda: client.reactions_add(channel=SUPPORT, timestamp=ts, name="x"),
        "reactions.remove": lambda: client.reactions_remove(
            channel=SUPPORT, timestamp=ts, name="x"
        ),
        "views.open": lambda: client.views_open(trigger_id=trigger, view=modal),
        "views.publish": lambda: client.views_publish(
            user_id=REQUESTER, view={"type": "home", "blocks": []}
        ),
    }
    responses = {}
    for method, call in calls.items():
        body = call().data
        assert isinstance(body, dict)
        responses[method] = body
    return responses


# Keys a nested object in the example has that the same object of ours must have too.
_NESTED = {
    "chat.postMessage": ["message"],
    "chat.update": ["message"],
    "conversations.info": ["channel"],
    "users.info": ["user"],
    "users.lookupByEmail": ["user"],
    "views.open": ["view"],
    "views.publish": ["view"],
}


def test_responses_have_the_keys_of_slacks_examples(
    client: WebClient, slack: SlackEmulator
) -> None:
    """Each method's response has every key of Slack's published example, top level and nested."""
    for method, actual in _responses(client, slack).items():
        example = corpus(f"slack-api-specs_web-api-examples/{method}.ok.json")
        assert_has_keys(example, actual, method)
        for key in _NESTED.get(method, []):
            assert_has_keys(example[key], actual[key], f"{method}.{key}")
        if method in ("users.info", "users.lookupByEmail"):
            assert_has_keys(example["user"]["profile"], actual["user"]["profile"], method)
        if method == "conversations.replies":
            parent_example, reply_example = example["messages"][:2]
            parent, reply = actual["messages"]
            assert_has_keys(parent_example, parent, "replies parent")
            assert_has_keys(reply_example, reply, "replies reply")


def test_bot_post_with_username_is_a_bot_message(client: WebClient) -> None:
    """A bot post that overrides its username has subtype bot_message, like Slack's example."""
    plain = client.chat_postMessage(channel=SUPPORT, text="plain")["message"]
    custom = client.chat_postMessage(channel=SUPPORT, text="custom", username="ecto1")["message"]

    assert "subtype" not in plain and plain["bot_id"] == "B0SANDBOT"
    assert custom["subtype"] == "bot_message" and custom["username"] == "ecto1"


def test_error_shape_matches_slacks_example(slack: SlackEmulator) -> None:
    """An auth failure body has exactly the keys of Slack's error example."""
    example = corpus("slack-api-specs_web-api-examples/auth.test.error.json")

    with pytest.raises(SlackApiError) as failure:
        WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()

    assert failure.value.response.data == example


# -- Events API --------------------------------------------------------------------------------


def test_signed_delivery_verifies(slack: SlackEmulator, receiver: Receiver) -> None:
    """Events are signed so SignatureVerifier accepts them; a bad or stale signature is refused."""
    good = slack.deliver({"type": "app_mention", "text": "hi", "channel": SUPPORT})
    bad = slack.deliver({"type": "app_mention", "text": "hi"}, bad_signature=True)
    stale = slack.deliver({"type": "app_mention", "text": "hi"}, stale=True)

    assert [good[0], bad[0], stale[0]] == [200, 401, 401]
    assert [r.verified for r in receiver.requests] == [True, False, False]
    headers = receiver.requests[0].headers
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert headers["Content-Type"] == "application/json"


def test_app_mention_envelope_matches_slacks_example(
    slack: SlackEmulator, receiver: Receiver
) -> None:
    """A person @-mentioning the bot delivers an app_mention envelope shaped like Slack's docs."""
    example = corpus("slack-docs/app_mention_event_callback.json")

    post = slack.post_as_user(REQUESTER, SUPPORT, f"<@{BOT}> is the VPN down?")

    (delivery,) = post.deliveries
    envelope = receiver.requests[0].payload
    assert delivery.status == 200 and envelope["type"] == "event_callback"
    assert_has_keys(example, envelope, "envelope")
    assert_has_keys(example["event"], envelope["event"], "event")
    assert_has_keys(example["authorizations"][0], envelope["authorizations"][0], "authorization")
    for key in ("is_ext_shared_channel", "event_context"):
        assert key in envelope
    event = envelope["event"]
    assert event["type"] == "app_mention" and event["user"] == REQUESTER
    assert event["ts"] == post.message.ts and event["channel"] == SUPPORT
    assert envelope["event_id"].startswith("Ev") and envelope["api_app_id"] == "A0SANDBOX"


def test_thread_reply_is_a_message_event(slack: SlackEmulator, receiver: Receiver) -> None:
    """A person's reply without a mention delivers a message event with thread_ts and parent."""
    parent = slack.post_as_user(REQUESTER, SUPPORT, "first").message
    reply = slack.post_as_user("U0APPROVER", SUPPORT, "second", thread_ts=parent.ts).message

    event = receiver.requests[-1].payload["event"]
    assert event["type"] == "message" and event["channel_type"] == "channel"
    assert event["thread_ts"] == parent.ts and event["parent_user_id"] == REQUESTER
    assert event["ts"] == reply.ts and "subtype" not in event
    assert [m.ts for m in slack.thread(SUPPORT, parent.ts)] == [parent.ts, reply.ts]
    ids = [r.payload["event_id"] for r in receiver.requests]
    assert len(set(ids)) == len(ids)


def test_bot_posts_produce_message_events(
    client: WebClient, slack: SlackEmulator, receiver: Receiver
) -> None:
    """The bot's own posts reach the app as message events with bot_id, unless turned off."""
    posted = client.chat_postMessage(channel=SUPPORT, text="from the bot")
    slack.wait_for_deliveries()
    slack.dispatcher.subscriptions = EventSubscriptions(bot_activity=False)
    client.chat_postMessage(channel=SUPPORT, text="unseen")
    slack.wait_for_deliveries()

    (request,) = receiver.requests
    event = request.payload["event"]
    assert event["bot_id"] == "B0SANDBOT" and event["user"] == BOT
    assert event["ts"] == posted["ts"] and event["type"] == "message"


def test_reaction_events_match_slacks_example(slack: SlackEmulator, receiver: Receiver) -> None:
    """Reacting and unreacting deliver reaction_added / reaction_removed shaped like Slack's."""
    python_example = corpus("python-slack-events-api/reaction_added.json")
    java_example = corpus("java-slack-sdk_json-logs/events/ReactionAddedPayload.json")
    message = slack.post_as_user(REQUESTER, SUPPORT, "approve please").message

    slack.react_as_user("U0APPROVER", SUPPORT, message.ts, "white_check_mark")
    slack.unreact_as_user("U0APPROVER", SUPPORT, message.ts, "white_check_mark")

    added, removed = (r.payload for r in receiver.requests[1:])
    assert_has_keys(python_example["event"], added["event"], "reaction_added event")
    assert_has_keys(python_example["event"]["item"], added["event"]["item"], "item")
    # enterprise_id only appears for Enterprise Grid installs; authed_users is deprecated.
    envelope_keys = set(java_example) - {"enterprise_id", "authed_users"}
    assert envelope_keys <= set(added)
    assert added["event"]["item"] == {"type": "message", "channel": SUPPORT, "ts": message.ts}
    assert added["event"]["item_user"] == REQUESTER
    assert removed["event"]["type"] == "reaction_removed"


def test_retry_headers_keep_the_event_id(slack: SlackEmulator, receiver: Receiver) -> None:
    """A manual retry carries X-Slack-Retry-Num/Reason and the same event_id."""
    envelope = slack.dispatcher.builder.envelope({"type": "app_mention", "text": "hi"})

    slack.deliver(envelope)
    slack.deliver(envelope, retry_num=1)

    first, retry = receiver.requests
    assert "X-Slack-Retry-Num" not in first.headers
    assert retry.headers["X-Slack-Retry-Num"] == "1"
    assert retry.headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert retry.payload["event_id"] == first.payload["event_id"]


def test_slow_app_gets_a_retry() -> None:
    """An app slower than the timeout is retried with reason http_timeout and the same event."""
    with SlackEmulator(event_timeout=0.2, retry_delays=(0.0,)) as slack:
        endpoint = Receiver(slack.signing_secret, delays=[0.5])
        app = web.Application()
        app.router.add_post("/slack/events", endpoint.handle)
        server = BackgroundServer(app)
        slack.events_url = server.start() + "/slack/events"
        try:
            post = slack.post_as_user(REQUESTER, SUPPORT, f"<@{BOT}> hello?")
        finally:
            server.stop()

    timed_out, retried = post.deliveries
    assert timed_out.status is None and timed_out.error == "http_timeout"
    assert retried.status == 200 and retried.retry_num == 1
    assert endpoint.requests[1].headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert retried.event_id == timed_out.event_id


def test_url_verification(slack: SlackEmulator, receiver: Receiver) -> None:
    """The url_verification challenge is sent signed and the echoed challenge is accepted."""
    assert slack.verify_events_url() is True
    assert receiver.requests[0].payload["type"] == "url_verification"


def test_bolt_app_answers_a_mention_in_thread(slack: SlackEmulator) -> None:
    """A real Bolt app verifies our events, replies in thread, and ignores its own message."""
    bolt = AsyncApp(
        signing_secret=slack.signing_secret,
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
    )
    replied = threading.Event()

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text="Looking into it.", thread_ts=event["ts"])
        replied.set()

    server = BackgroundServer(bolt.web_app())
    slack.events_url = server.start() + "/slack/events"
    try:
        post = slack.post_as_user(REQUESTER, SUPPORT, f"<@{BOT}> is the VPN down?")
        assert replied.wait(5)
        wait_until(lambda: len(slack.thread(SUPPORT, post.message.ts)) == 2)
        slack.wait_for_deliveries()
        forged = slack.deliver({"type": "app_mention", "text": "x"}, bad_signature=True)
    finally:
        server.stop()

    assert post.deliveries[0].status == 200
    reply = slack.thread(SUPPORT, post.message.ts)[1]
    assert reply.text == "Looking into it." and reply.bot_id == "B0SANDBOT"
    own = [d for d in slack.deliveries("message") if d.envelope["event"].get("bot_id")]
    assert own and all(d.status == 200 for d in own)  # acknowledged, not answered again
    assert len(slack.thread(SUPPORT, post.message.ts)) == 2
    assert forged[0] == 401


def test_conversations_members_pages_and_hides_private_channels_from_outsiders(
    client: WebClient, slack: SlackEmulator
) -> None:
    """conversations.members lists a channel's members a page at a time; a private channel
    answers channel_not_found to a caller outside it, as Slack does."""
    from sandbox.slack_workspace import Channel

    first = client.conversations_members(channel=SUPPORT, limit=2)
    rest = client.conversations_members(
        channel=SUPPORT, limit=100, cursor=first["response_metadata"]["next_cursor"]
    )
    assert len(first["members"]) == 2 and first["response_metadata"]["next_cursor"]
    everyone = first["members"] + rest["members"]
    assert REQUESTER in everyone and len(set(everyone)) == len(everyone)
    assert rest["response_metadata"]["next_cursor"] == ""
    slack.workspace.add_channel(
        Channel("G0HIDDEN", "hidden", int(time.time()), REQUESTER, {REQUESTER}, is_private=True)
    )
    with pytest.raises(SlackApiError) as refused:
        client.conversations_members(channel="G0HIDDEN")
    assert refused.value.response["error"] == "channel_not_found"
