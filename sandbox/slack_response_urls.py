"""response_url: where an app answers a slash command or an interaction after its ack.

Each slash command and block action carries a ``response_url``. The app POSTs JSON there
(``text``, ``blocks``, ``attachments``, ``response_type``, ``replace_original``,
``delete_original``, ``thread_ts``), at most five times within thirty minutes, and Slack
shows it: with ``response_type: in_channel`` as a message from the app in the conversation,
otherwise (the default) as an ephemeral message to the person who acted.
``replace_original`` / ``delete_original`` change the message the interaction came from;
for a slash command they act on the command's latest response.

`ResponseUrls` issues the URLs, serves ``POST /response_url/<id>``, applies each post to
the workspace (telling the Events API about channel messages) and keeps every post so a
test can read what the app said. An app's immediate answer to a slash command is applied
the same way (`show_ack`), without spending one of the URL's uses.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.slack_types import JsonDict, SlackError
from sandbox.slack_web_api import WorkspaceEvents
from sandbox.slack_workspace import EphemeralMessage, Message, SlackWorkspace

# Slack accepts five posts to one response_url, within thirty minutes of the interaction.
RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60  # seconds
ROUTE = "/response_url/{id}"


@dataclass(frozen=True)
class Original:
    """The message that ``replace_original`` and ``delete_original`` act on."""

    channel: str
    ts: str
    ephemeral: bool


@dataclass(frozen=True)
class ResponsePost:
    """One POST the app made to a response_url, and what it changed in the workspace."""

    url: str
    body: JsonDict | None  # the JSON object the app sent; None when it sent something else
    status: int  # our HTTP answer: 200, or Slack's 4xx
    answer: str  # the body of our answer: "ok" or Slack's error code
    message: Message | None = None  # the conversation message posted, replaced or deleted
    ephemeral: EphemeralMessage | None = None  # the ephemeral message shown, replaced or gone

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Hook:
    id: str
    url: str
    channel: str
    user_id: str  # who ran the command or clicked
    issued_at: float
    original: Original | None
    follows_responses: bool  # a command's URL: each new response becomes the original
    uses: int = 0


class _Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


class ResponseUrls:
    """The response_urls handed to the app, and everything it posted to them; thread-safe."""

    def __init__(
        self,
        workspace: SlackWorkspace,
        events: WorkspaceEvents | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.events = events
        self.base_url = ""  # the emulator's http://host:port, set once it listens
        self._clock = clock
        self._hooks: dict[str, _Hook] = {}
        self._posts: list[ResponsePost] = []
        self._changed = threading.Condition()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ROUTE, self.handle)

    def issue(
        self, *, channel: str, user_id: str, original: Original | None, for_command: bool
    ) -> str:
        """A new response_url for an interaction by ``user_id`` in ``channel``."""
        if not self.base_url:
            raise RuntimeError("response_urls need the emulator's address; start it first")
        hook_id = secrets.token_urlsafe(24)
        url = f"{self.base_url}/response_url/{hook_id}"
        hook = _Hook(hook_id, url, channel, user_id, self._clock(), original, for_command)
        with self._changed:
            self._hooks[hook_id] = hook
        return url

    # -- reading what the app said -------------------------------------------------------------

    def posts(self, url: str | None = None) -> list[ResponsePost]:
        """Every post to ``url`` (or to any response_url), oldest first."""
        with self._changed:
            return [p for p in self._posts if url in (None, p.url)]

    def wait_for_posts(self, url: str, count: int, timeout: float) -> list[ResponsePost]:
        """Block until ``url`` has had ``count`` posts; returns them (fewer on timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.posts(url)) >= count, timeout)
            return self.posts(url)

    # -- the app posting -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["id"]
        raw = await request.text()
        try:
            parsed: object = json.loads(raw)
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        post = self.receive(hook_id, body)
        return web.Response(status=post.status, text=post.answer, content_type="text/html")

    def receive(self, hook_id: str, body: JsonDict | None) -> ResponsePost:
        """Apply one post to a response_url, as Slack would, and record it."""
        with self._changed:
            hook = self._hooks.get(hook_id)
        url = hook.url if hook is not None else f"{self.base_url}/response_url/{hook_id}"
        try:
            if hook is None or self._clock() - hook.issued_at > RESPONSE_URL_LIFETIME:
                raise _Refused(404, "expired_url")
            if hook.uses >= RESPONSE_URL_USES:
                raise _Refused(404, "used_url")
            if body is None:
                raise _Refused(400, "invalid_payload")
            hook.uses += 1
            message, ephemeral = self._apply(hook, body)
            post = ResponsePost(url, body, 200, "ok", message, ephemeral)
        except _Refused as refused:
            post = ResponsePost(url, body, refused.status, refused.code)
        self._record(post)
        return post

    def show_ack(self, url: str, body: JsonDict) -> None:
        """Show a slash command's immediate answer, which uses none of its URL's posts."""
        with self._changed:
            hook = next((h for h in self._hooks.values() if h.url == url), None)
        if hook is None:
            return
        # Slack shows nothing for an answer it cannot display.
        with contextlib.suppress(_Refused):
            self._apply(hook, body)

    # -- internals -----------------------------------------------------------------------------

    def _apply(self, hook: _Hook, body: JsonDict) -> tuple[Message | None, EphemeralMessage | None]:
        text = body.get("text")
        blocks = body.get("blocks")
        attachments = body.get("attachments")
        if not isinstance(text, str | None) or not _list_of_objects(blocks, attachments):
            raise _Refused(400, "invalid_payload")
        try:
            if _flag(body.get("delete_original")):
                return self._delete_original(hook)
            if not text and not blocks and not attachments:
                raise _Refused(400, "no_text")
            if _flag(body.get("replace_original")) and hook.original is not None:
                return self._replace_original(hook, hook.original, text or "", blocks, attachments)
            return self._show_new(hook, body, text or "", blocks, attachments)
        except SlackError as error:
            raise _Refused(404, error.error) from None

    def _delete_original(self, hook: _Hook) -> tuple[Message | None, EphemeralMessage | None]:
        original = hook.original
        if original is None:
            raise _Refused(404, "message_not_found")
        hook.original = None
        if original.ephemeral:
            return None, self.workspace.delete_ephemeral(hook.user_id, original.ts)
        deleted = self.workspace.delete_message(original.channel, original.ts)
        if self.events is not None:
            self.events.message_deleted(deleted)
        return deleted, None

    def _replace_original(
        self,
        hook: _Hook,
        original: Original,
        text: str,
        blocks: list[JsonDict] | None,
        attachments: list[JsonDict] | None,
    ) -> tuple[Message | None, EphemeralMessage | None]:
        if original.ephemeral:
            replaced = self.workspace.replace_ephemeral(
                hook.user_id, original.ts, text=text, blocks=blocks
            )
            return None, replaced
        before, after = self.workspace.update_message(
            original.channel,
            original.ts,
            editor=self.workspace.app.bot_user_id,
            text=text,
            blocks=blocks,
            attachments=attachments,
            replace=True,
        )
        if self.events is not None:
            self.events.message_changed(before, after)
        return after, None

    def _show_new(
        self,
        hook: _Hook,
        body: JsonDict,
        text: str,
        blocks: list[JsonDict] | None,
        attachments: list[JsonDict] | None,
    ) -> tuple[Message | None, EphemeralMessage | None]:
        thread_ts = body.get("thread_ts")
        thread_ts = thread_ts if isinstance(thread_ts, str) and thread_ts else None
        if body.get("response_type") == "in_channel":
            metadata = body.get("metadata")
            message = self.workspace.post_message(
                hook.channel,
                user=self.workspace.app.bot_user_id,
                text=text,
                blocks=blocks,
                attachments=attachments,
                metadata=metadata if isinstance(metadata, dict) else None,
                thread_ts=thread_ts,
            )
            if self.events is not None:
                self.events.message_posted(message)
            if hook.follows_responses:
                hook.original = Original(message.channel, message.ts, ephemeral=False)
            return message, None
        ephemeral = self.workspace.post_ephemeral(
            hook.channel, user=hook.user_id, text=text, blocks=blocks, thread_ts=thread_ts
        )
        if hook.follows_responses:
            hook.original = Original(ephemeral.channel, ephemeral.ts, ephemeral=True)
        return None, ephemeral

    def _record(self, post: ResponsePost) -> None:
        with self._changed:
            self._posts.append(post)
            self._changed.notify_all()


def _flag(value: object) -> bool:
    # Bolt sends JSON booleans; Slack's older examples send the strings "true"/"false".
    return value is True or value in ("true", "1")


def _list_of_objects(*values: object) -> bool:
    return all(
        value is None or (isinstance(value, list) and all(isinstance(v, dict) for v in value))
        for value in values
    )
