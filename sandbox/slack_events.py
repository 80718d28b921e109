"""Events API delivery: what Slack POSTs to an app when something happens in the workspace.

Three parts:

* `EventBuilder` turns workspace happenings (a post, an edit, a reaction) into the Events
  API events Slack would send, wrapped in Slack's ``event_callback`` envelope.
* `SlackEventDispatcher` delivers envelopes over HTTP, signed like Slack's
  (``X-Slack-Signature`` over ``v0:{timestamp}:{body}``), with Slack's 3-second timeout and
  optional retries (``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``, same ``event_id``).
  It can also sign wrongly or with a stale timestamp, for testing an app's 401 path.
* `UserActions` lets a person act in the workspace (post, react) and waits for the
  resulting deliveries, the way someone typing in Slack would trigger the app.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import string
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.signature import SignatureVerifier

from sandbox.slack_search import issue_action_token
from sandbox.slack_workspace import (
    JsonDict,
    Message,
    SlackError,
    SlackWorkspace,
    mentioned_user_ids,
)

# Slack abandons a delivery the app has not answered within three seconds.
RESPONSE_TIMEOUT = 3.0
# Slack's own retry schedule after a failed delivery: at once, after 1 min, after 5 min.
SLACK_RETRY_DELAYS = (0.0, 60.0, 300.0)
# Bolt and slack_sdk reject requests whose timestamp is more than five minutes old.
STALE_AGE = 6 * 60
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"

_EVENT_ID_ALPHABET = string.ascii_uppercase + string.digits


def sign(signing_secret: str, timestamp: int, body: str) -> str:
    """Slack's request signature: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    signature = SignatureVerifier(signing_secret).generate_signature(
        timestamp=str(timestamp), body=body
    )
    assert signature is not None  # only None when the secret is empty
    return signature


@dataclass(frozen=True)
class EventSubscriptions:
    """Which events the app receives, like the Event Subscriptions page of a Slack app."""

    app_mention: bool = True
    messages: bool = True  # message.channels / message.groups / message.im
    reactions: bool = True
    # Slack delivers events caused by the app's own bot too; apps must ignore them.
    bot_activity: bool = True
    # Slack sends both app_mention and message for a mention when an app subscribes to
    # both; off by default so a mention reaches the app once.
    message_for_mentions: bool = False
    # assistant_thread_started / assistant_thread_context_changed (the app's side panel).
    assistant: bool = True


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP request of an event to the app, and how the app answered."""

    event_id: str
    event_type: str
    url: str
    envelope: JsonDict
    status: int | None  # None when no HTTP answer came back
    body: str
    retry_num: int | None = None
    error: str | None = None  # Slack's retry reason: http_timeout, connection_failed, http_error
    no_retry: bool = False  # the app answered with X-Slack-No-Retry: 1
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class EventBuilder:
    """Slack's Events API payloads for changes in one workspace."""

    def __init__(self, workspace: SlackWorkspace, subscriptions: EventSubscriptions) -> None:
        self.workspace = workspace
        self.subscriptions = subscriptions
        self._issued_ids: set[str] = set()
        self._lock = threading.Lock()

    def envelope(self, event: JsonDict) -> JsonDict:
        """Wrap an event in the ``event_callback`` envelope, with a fresh ``event_id``."""
        ws = self.workspace
        return {
            "token": ws.app.verification_token,
            "team_id": ws.team.id,
            "context_team_id": ws.team.id,
            "context_enterprise_id": None,
            "api_app_id": ws.app.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": self._new_event_id(),
            "event_time": int(ws.now()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": ws.team.id,
                    "user_id": ws.app.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": self._is_ext_shared(event),
            "event_context": self._event_context(event),
        }

    def url_verification(self) -> JsonDict:
        return {
            "token": self.workspace.app.verification_token,
            "challenge": secrets.token_urlsafe(36),
            "type": "url_verification",
        }

    def for_post(self, message: Message) -> list[JsonDict]:
        """Events for a new message: app_mention when the bot is @-mentioned, else message."""
        channel_type = self._channel_type(message.channel)
        subs = self.subscriptions
        if self._is_own(message.user):
            return [self._message_event(message, channel_type)] if subs.bot_activity else []
        if not self._bot_sees(message.channel):
            return []
        bot = self.workspace.app.bot_user_id
        mentioned = bot in mentioned_user_ids(message.text) and channel_type != "im"
        events: list[JsonDict] = []
        if mentioned and subs.app_mention:
            events.append(self._app_mention_event(message))
        if subs.messages and (not mentioned or subs.message_for_mentions):
            events.append(self._message_event(message, channel_type))
        return events

    def for_change(self, before: Message, after: Message) -> list[JsonDict]:
        if not self._wants_message_events(after):
            return []
        event_ts = (after.edited or {}).get("ts") or self.workspace.next_ts()
        event: JsonDict = {
            "type": "message",
            "subtype": "message_changed",
            "message": after.to_slack(),
            "previous_message": before.to_slack(),
            "channel": after.channel,
            "hidden": True,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": self._channel_type(after.channel),
        }
        return [event]

    def for_delete(self, message: Message) -> list[JsonDict]:
        if not self._wants_message_events(message):
            return []
        event_ts = self.workspace.next_ts()
        event: JsonDict = {
            "type": "message",
            "subtype": "message_deleted",
            "previous_message": message.to_slack(),
            "channel": message.channel,
            "hidden": True,
            "deleted_ts": message.ts,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": self._channel_type(message.channel),
        }
        return [event]

    def for_reaction(
        self, added: bool, user_id: str, message: Message, name: str
    ) -> list[JsonDict]:
        subs = self.subscriptions
        if not subs.reactions or not self._bot_sees(message.channel):
            return []
        if self._is_own(user_id) and not subs.bot_activity:
            return []
        event: JsonDict = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user_id,
            "item": {"type": "message", "channel": message.channel, "ts": message.ts},
            "reaction": name,
            "item_user": message.user,
            "event_ts": self.workspace.next_ts(),
        }
        return [event]

    def for_assistant_thread(
        self,
        event_type: str,
        *,
        user_id: str,
        channel: str,
        thread_ts: str,
        context_channel: str | None,
    ) -> list[JsonDict]:
        """assistant_thread_started / assistant_thread_context_changed: a person opened the
        app's side panel (or a new chat), or moved to another channel with it open."""
        if not self.subscriptions.assistant:
            return []
        context: JsonDict = {}
        if context_channel is not None:
            context = {
                "channel_id": self.workspace.channel(context_channel).id,
                "team_id": self.workspace.team.id,
                "enterprise_id": None,
            }
        event: JsonDict = {
            "type": event_type,
            "assistant_thread": {
                "user_id": user_id,
                "context": context,
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": self.workspace.next_ts(),
        }
        return [event]

    def _wants_message_events(self, message: Message) -> bool:
        if self._is_own(message.user):
            return self.subscriptions.bot_activity
        return self.subscriptions.messages and self._bot_sees(message.channel)

    def _message_event(self, message: Message, channel_type: str) -> JsonDict:
        event = message.to_slack(include_metadata=True)
        event.update({"channel": message.channel, "event_ts": message.ts})
        event["channel_type"] = channel_type
        if not self._is_own(message.user):
            # As Slack does for AI apps: what lets the bot call assistant.search.context.
            event["action_token"] = issue_action_token(self.workspace)
        return event

    def _app_mention_event(self, message: Message) -> JsonDict:
        fields = message.to_slack(include_metadata=False)
        fields.pop("type")
        return {
            "type": "app_mention",
            **fields,
            "channel": message.channel,
            "event_ts": message.ts,
            "action_token": issue_action_token(self.workspace),
        }

    def _is_own(self, user_id: str | None) -> bool:
        return user_id == self.workspace.app.bot_user_id

    def _bot_sees(self, channel: str) -> bool:
        try:
            return self.workspace.is_member(channel, self.workspace.app.bot_user_id)
        except SlackError:
            return False

    def _channel_type(self, channel: str) -> str:
        return self.workspace.channel(channel).channel_type

    def _is_ext_shared(self, event: JsonDict) -> bool:
        channel = event.get("channel") or (event.get("item") or {}).get("channel")
        if not isinstance(channel, str):
            return False
        try:
            return self.workspace.channel(channel).is_ext_shared
        except SlackError:
            return False

    def _event_context(self, event: JsonDict) -> str:
        # Slack's opaque event_context is "4-" + base64url of a small JSON summary.
        channel = event.get("channel") or (event.get("item") or {}).get("channel")
        summary = {
            "et": event.get("type"),
            "tid": self.workspace.team.id,
            "aid": self.workspace.app.app_id,
            "cid": channel,
        }
        encoded = base64.urlsafe_b64encode(json.dumps(summary, separators=(",", ":")).encode())
        return "4-" + encoded.decode().rstrip("=")

    def _new_event_id(self) -> str:
        with self._lock:
            while True:
                suffix = "".join(secrets.choice(_EVENT_ID_ALPHABET) for _ in range(9))
                event_id = "Ev0" + suffix
                if event_id not in self._issued_ids:
                    self._issued_ids.add(event_id)
                    return event_id


class SlackEventDispatcher:
    """Delivers Events API requests to the app at `url`, as Slack does.

    The ``message_posted`` / ``message_changed`` / ``message_deleted`` / ``reaction_changed``
    notifications (called by the Web API on the server's loop) deliver in the background,
    because Slack does not hold an API response until the app has handled the event.
    Async methods must run on the loop that serves the Web API.
    """

    def __init__(
        self,
        workspace: SlackWorkspace,
        *,
        url: str | None = None,
        subscriptions: EventSubscriptions | None = None,
        timeout: float = RESPONSE_TIMEOUT,
        retry_delays: Iterable[float] = (),
    ) -> None:
        self.workspace = workspace
        self.url = url
        self.builder = EventBuilder(workspace, subscriptions or EventSubscriptions())
        self.timeout = timeout
        # One retry per delay; empty by default so tests see each event exactly once.
        self.retry_delays = tuple(retry_delays)
        self._attempts: list[DeliveryAttempt] = []
        self._attempts_lock = threading.Lock()
        self._pending: set[asyncio.Task[list[DeliveryAttempt]]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def signing_secret(self) -> str:
        return self.workspace.app.signing_secret

    @property
    def subscriptions(self) -> EventSubscriptions:
        return self.builder.subscriptions

    @subscriptions.setter
    def subscriptions(self, value: EventSubscriptions) -> None:
        self.builder.subscriptions = value

    def attempts(self, event_type: str | None = None) -> list[DeliveryAttempt]:
        """Every delivery attempt so far, oldest first; thread-safe."""
        with self._attempts_lock:
            return [a for a in self._attempts if event_type in (None, a.event_type)]

    def clear_attempts(self) -> None:
        with self._attempts_lock:
            self._attempts.clear()

    # -- delivery ----------------------------------------------------------------------------

    async def deliver(
        self,
        envelope_or_event: JsonDict,
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        bad_signature: bool = False,
        stale: bool = False,
    ) -> DeliveryAttempt:
        """POST one request to the app. A bare event is wrapped in a fresh envelope first.

        ``retry_num`` marks the request as Slack's n-th retry; ``bad_signature`` signs with
        the wrong secret and ``stale`` with a timestamp six minutes old.
        """
        url = self._require_url()
        envelope = self._as_envelope(envelope_or_event)
        body = json.dumps(envelope)
        timestamp = int(time.time()) - (STALE_AGE if stale else 0)
        secret = self.signing_secret
        if bad_signature:
            secret = "not-" + secret
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(secret, timestamp, body),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        attempt = await self._post(url, envelope, body, headers, retry_num)
        with self._attempts_lock:
            self._attempts.append(attempt)
        return attempt

    async def dispatch(self, event: JsonDict) -> list[DeliveryAttempt]:
        """Deliver one event in a new envelope, retrying on failure per `retry_delays`."""
        if self.url is None:
            return []
        envelope = self.builder.envelope(event)
        attempts = [await self.deliver(envelope)]
        for retry_num, delay in enumerate(self.retry_delays, start=1):
            last = attempts[-1]
            if last.ok or last.no_retry:
                break
            await asyncio.sleep(delay)
            reason = last.error or "http_error"
            attempts.append(await self.deliver(envelope, retry_num=retry_num, retry_reason=reason))
        return attempts

    async def dispatch_all(self, events: Iterable[JsonDict]) -> list[DeliveryAttempt]:
        attempts: list[DeliveryAttempt] = []
        for event in events:
            attempts.extend(await self.dispatch(event))
        return attempts

    async def verify_url(self) -> bool:
        """Send Slack's url_verification challenge; True when the app echoes it back."""
        challenge = self.builder.url_verification()
        attempt = await self.deliver(challenge)
        if not attempt.ok:
            return False
        expected: str = challenge["challenge"]
        try:
            answer: object = json.loads(attempt.body)
        except ValueError:
            return attempt.body == expected
        return isinstance(answer, dict) and answer.get("challenge") == expected

    # -- notifications from the Web API (fire and forget) ------------------------------------

    def message_posted(self, message: Message) -> None:
        self._in_background(self.dispatch_all(self.builder.for_post(message)))

    def message_changed(self, before: Message, after: Message) -> None:
        self._in_background(self.dispatch_all(self.builder.for_change(before, after)))

    def message_deleted(self, message: Message) -> None:
        self._in_background(self.dispatch_all(self.builder.for_delete(message)))

    def reaction_changed(self, added: bool, user_id: str, message: Message, name: str) -> None:
        events = self.builder.for_reaction(added, user_id, message, name)
        self._in_background(self.dispatch_all(events))

    async def drain(self) -> None:
        """Wait until every background delivery has finished."""
        # A delivery can start others (retries), so wait until nothing is left running.
        while running := [task for task in self._pending if not task.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals ---------------------------------------------------------------------------

    def _in_background(self, work: Coroutine[Any, Any, list[DeliveryAttempt]]) -> None:
        if self.url is None:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _require_url(self) -> str:
        if self.url is None:
            raise RuntimeError("no events URL: set the app's Request URL first")
        return self.url

    def _as_envelope(self, envelope_or_event: JsonDict) -> JsonDict:
        if envelope_or_event.get("type") in ("event_callback", "url_verification"):
            return envelope_or_event
        return self.builder.envelope(envelope_or_event)

    async def _post(
        self,
        url: str,
        envelope: JsonDict,
        body: str,
        headers: dict[str, str],
        retry_num: int | None,
    ) -> DeliveryAttempt:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        event = envelope.get("event") or {}
        started = time.monotonic()
        result: dict[str, Any] = {
            "event_id": str(envelope.get("event_id", "")),
            "event_type": str(event.get("type") or envelope.get("type", "")),
            "url": url,
            "envelope": envelope,
            "retry_num": retry_num,
        }
        try:
            async with self._session.post(
                url,
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                text = await response.text()
                no_retry = response.headers.get("X-Slack-No-Retry") == "1"
                error = None if 200 <= response.status < 300 else "http_error"
                return DeliveryAttempt(
                    **result,
                    status=response.status,
                    body=text,
                    error=error,
                    no_retry=no_retry,
                    elapsed=time.monotonic() - started,
                )
        except TimeoutError:
            error = "http_timeout"
        except aiohttp.ClientError:
            error = "connection_failed"
        return DeliveryAttempt(
            **result, status=None, body="", error=error, elapsed=time.monotonic() - started
        )


@dataclass(frozen=True)
class UserPost:
    """A message a person posted, and the deliveries it caused."""

    message: Message
    deliveries: list[DeliveryAttempt] = field(default_factory=list)


class UserActions:
    """People acting in the workspace; each action waits for the app to be told."""

    def __init__(self, workspace: SlackWorkspace, dispatcher: SlackEventDispatcher) -> None:
        self.workspace = workspace
        self.dispatcher = dispatcher

    async def post_as_user(
        self,
        user_id: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        *,
        blocks: list[JsonDict] | None = None,
    ) -> UserPost:
        """Post as a person; the app gets app_mention when the bot is @-mentioned, else message."""
        self._check_member(user_id, channel)
        message = self.workspace.post_message(
            channel, user=user_id, text=text, blocks=blocks, thread_ts=thread_ts
        )
        deliveries = await self.dispatcher.dispatch_all(self.dispatcher.builder.for_post(message))
        return UserPost(message, deliveries)

    async def open_assistant_thread(
        self, user_id: str, context_channel: str | None = None
    ) -> UserPost:
        """Open the app's side panel as a person: a new thread in their DM with the app,
        then assistant_thread_started carrying the channel they were viewing."""
        root = self.workspace.open_assistant_thread(user_id)
        builder = self.dispatcher.builder
        events = builder.for_post(root) + builder.for_assistant_thread(
            "assistant_thread_started",
            user_id=user_id,
            channel=root.channel,
            thread_ts=root.ts,
            context_channel=context_channel,
        )
        return UserPost(root, await self.dispatcher.dispatch_all(events))

    async def change_assistant_context(
        self, user_id: str, channel: str, thread_ts: str, context_channel: str
    ) -> list[DeliveryAttempt]:
        """The person moved to ``context_channel`` with the side panel's thread open."""
        events = self.dispatcher.builder.for_assistant_thread(
            "assistant_thread_context_changed",
            user_id=user_id,
            channel=channel,
            thread_ts=thread_ts,
            context_channel=context_channel,
        )
        return await self.dispatcher.dispatch_all(events)

    async def react_as_user(
        self, user_id: str, channel: str, ts: str, name: str
    ) -> list[DeliveryAttempt]:
        self._check_member(user_id, channel)
        message = self.workspace.add_reaction(channel, ts, name, user_id)
        events = self.dispatcher.builder.for_reaction(True, user_id, message, name)
        return await self.dispatcher.dispatch_all(events)

    async def unreact_as_user(
        self, user_id: str, channel: str, ts: str, name: str
    ) -> list[DeliveryAttempt]:
        self._check_member(user_id, channel)
        message = self.workspace.remove_reaction(channel, ts, name, user_id)
        events = self.dispatcher.builder.for_reaction(False, user_id, message, name)
        return await self.dispatcher.dispatch_all(events)

    def _check_member(self, user_id: str, channel: str) -> None:
        self.workspace.user(user_id)
        if not self.workspace.is_member(channel, user_id):
            raise SlackError("not_in_channel")
