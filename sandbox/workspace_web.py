"""The sandbox's web page: a small chat workspace in the browser, on localhost.

Everything a person does on the page becomes what Slack itself would send the product:
a post or a reaction is stored in the emulated workspace and delivered as a signed Events
API request; `/agent ...` is a signed slash command; a button click or a modal submission
is a signed interaction. Mail composed on the page goes over SMTP to `chatops smtp`. The
page never reaches into the product.

Live updates: `/api/events` is a server-sent event stream that sends a new snapshot
(`sandbox.workspace_state`) whenever it differs from the last one sent.

Until the product is up, what would reach it is refused with a 503 that says so: Slack
would deliver those events to an app that is not listening yet, and they would be lost.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from sandbox.emoji_names import shortcodes
from sandbox.mailbox import Mailbox
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_interactivity import InteractionError
from sandbox.slack_workspace import SlackError, SlackWorkspace
from sandbox.workspace_state import Readiness, snapshot

STATIC_DIR = Path(__file__).with_name("web")
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
SNAPSHOT_INTERVAL = 0.25  # seconds between checks for changes to push to the page
KEEPALIVE_INTERVAL = 15.0  # seconds; an idle stream gets a comment so proxies keep it open
CHANNEL_NAME = re.compile(r"(?<![\w<])#([a-z0-9_-]+)")
# A web address typed in a message; Slack's client sends it as <url>, which makes it a link.
TYPED_URL = re.compile(r"(?<![\w<|])(https?://[^\s<>]+[^\s<>.,;:!?)\]'\"])")
NOT_READY = "The product is still starting (the dot at the top left turns green when it is up)."
AT_NAME = re.compile(r"(?<![\w<])@([a-z0-9._-]+)", re.IGNORECASE)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_workspace_app(
    slack: SlackEmulator, mailbox: Mailbox, readiness: Readiness
) -> web.Application:
    """The page, its static files, its JSON API and its event stream."""
    pages = WorkspacePages(slack, mailbox, readiness)
    app = web.Application()
    app.router.add_get("/", pages.index)
    app.router.add_get("/static/{name}", pages.static)
    app.router.add_get("/api/state", pages.state)
    app.router.add_get("/api/events", pages.events)
    app.router.add_get("/api/emoji", pages.emoji)
    app.router.add_post("/api/messages", pages.post_message)
    app.router.add_post("/api/reactions", pages.react)
    app.router.add_post("/api/commands", pages.slash_command)
    app.router.add_post("/api/actions", pages.click_button)
    app.router.add_post("/api/views/{view_id}/submit", pages.submit_view)
    app.router.add_post("/api/views/{view_id}/close", pages.close_view)
    app.router.add_post("/api/mail", pages.send_mail)
    app.router.add_post("/api/assistant/open", pages.open_assistant)
    app.router.add_post("/api/assistant/context", pages.change_assistant_context)
    app.middlewares.append(refuse_until_ready(readiness))
    app.on_shutdown.append(pages.end_streams)
    return app


def slack_text(workspace: SlackWorkspace, typed: str) -> str:
    """What Slack's client sends for typed text: `&<>` escaped, @name and #channel linked."""
    text = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    people = {u.name.lower(): u.id for u in workspace.users()}
    channels = {c.name: c.id for c in workspace.channels() if c.name}

    def person(match: re.Match[str]) -> str:
        user_id = people.get(match.group(1).lower())
        return f"<@{user_id}>" if user_id else match.group(0)

    def channel(match: re.Match[str]) -> str:
        channel_id = channels.get(match.group(1))
        return f"<#{channel_id}|{match.group(1)}>" if channel_id else match.group(0)

    linked = TYPED_URL.sub(lambda match: f"<{match.group(1)}>", text)
    return CHANNEL_NAME.sub(channel, AT_NAME.sub(person, linked))


# Requests that reach the product (as Slack or SMTP would) and so need it to be up.
REACHES_PRODUCT = frozenset(
    {
        "/api/messages",
        "/api/reactions",
        "/api/commands",
        "/api/actions",
        "/api/mail",
        "/api/assistant/open",
        "/api/assistant/context",
    }
)


def refuse_until_ready(readiness: Readiness) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        reaches_product = request.path in REACHES_PRODUCT or request.path.endswith("/submit")
        if reaches_product and not readiness.ready:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"ok": False, "error": NOT_READY}), content_type="application/json"
            )
        return await handler(request)

    return middleware


class WorkspacePages:
    """Request handlers; the emulator's blocking calls run in worker threads."""

    def __init__(self, slack: SlackEmulator, mailbox: Mailbox, readiness: Readiness) -> None:
        self.slack = slack
        self.mailbox = mailbox
        self.readiness = readiness
        self._shutting_down = False

    async def end_streams(self, _app: web.Application) -> None:
        # Open event streams would otherwise hold the server's shutdown for its whole grace
        # period; each one ends at its next tick.
        self._shutting_down = True

    def _snapshot_json(self) -> str:
        return json.dumps(snapshot(self.slack.workspace, self.mailbox, self.readiness))

    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / name, headers={"Content-Type": STATIC_FILES[name]})

    async def emoji(self, _request: web.Request) -> web.Response:
        names = await asyncio.to_thread(shortcodes)
        return web.json_response(names, headers={"Cache-Control": "max-age=86400"})

    async def state(self, _request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self._snapshot_json)
        return web.Response(text=body, content_type="application/json")

    async def events(self, request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await stream.prepare(request)
        last_sent = ""
        quiet_for = 0.0
        try:
            while not self._shutting_down:
                current = await asyncio.to_thread(self._snapshot_json)
                if current != last_sent:
                    await stream.write(f"event: snapshot\ndata: {current}\n\n".encode())
                    last_sent, quiet_for = current, 0.0
                elif quiet_for >= KEEPALIVE_INTERVAL:
                    await stream.write(b": keepalive\n\n")
                    quiet_for = 0.0
                await asyncio.sleep(SNAPSHOT_INTERVAL)
                quiet_for += SNAPSHOT_INTERVAL
        except ConnectionResetError:
            pass  # the tab was closed or reloaded; a reloaded page opens a new stream
        return stream

    async def post_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = slack_text(self.slack.workspace, str(body["text"]))
        post = await _as_person(
            self.slack.post_as_user,
            body["user"],
            body["channel"],
            text,
            body.get("thread_ts") or None,
        )
        return web.json_response({"ok": True, "ts": post.message.ts})

    async def react(self, request: web.Request) -> web.Response:
        body = await request.json()
        act = self.slack.react_as_user if body.get("add", True) else self.slack.unreact_as_user
        await _as_person(act, body["user"], body["channel"], body["ts"], body["name"])
        return web.json_response({"ok": True})

    async def slash_command(self, request: web.Request) -> web.Response:
        body = await request.json()
        command, _, text = str(body["text"]).strip().partition(" ")
        result = await _as_person(
            self.slack.run_slash_command,
            body["user"],
            body["channel"],
            slack_text(self.slack.workspace, text.strip()),
            command,
        )
        return web.json_response({"ok": result.ok, "status": result.status})

    async def click_button(self, request: web.Request) -> web.Response:
        body = await request.json()
        result = await _as_person(
            self.slack.click_button,
            body["user"],
            body["channel"],
            body["ts"],
            body["action_id"],
            body.get("value"),
            body.get("block_id"),
        )
        return web.json_response({"ok": result.ok, "status": result.status})

    async def submit_view(self, request: web.Request) -> web.Response:
        body = await request.json()
        result = await _as_person(
            self.slack.submit_view, body["user"], request.match_info["view_id"], body["values"]
        )
        return web.json_response({"ok": result.ok, "status": result.status})

    async def close_view(self, request: web.Request) -> web.Response:
        # Closing a modal is the person's own client; the app hears of it only when it asked
        # (notify_on_close), which the product never does.
        await _as_person(self.slack.workspace.close_view, request.match_info["view_id"])
        return web.json_response({"ok": True})

    async def open_assistant(self, request: web.Request) -> web.Response:
        """The person opened the app's side panel (or started a new chat in it)."""
        body = await request.json()
        opened = await _as_person(
            self.slack.open_assistant_thread, body["user"], body.get("context_channel") or None
        )
        return web.json_response(
            {"ok": True, "channel": opened.message.channel, "ts": opened.message.ts}
        )

    async def change_assistant_context(self, request: web.Request) -> web.Response:
        """The person moved to another channel while the side panel was open."""
        body = await request.json()
        await _as_person(
            self.slack.change_assistant_context,
            body["user"],
            body["channel"],
            body["ts"],
            body["context_channel"],
        )
        return web.json_response({"ok": True})

    async def send_mail(self, request: web.Request) -> web.Response:
        body = await request.json()
        sent = await asyncio.to_thread(
            self.mailbox.send_to_agent,
            str(body["from"]),
            str(body["to"]),
            str(body.get("subject", "")),
            str(body.get("body", "")),
        )
        return web.json_response({"ok": sent.status.startswith("250"), "status": sent.status})


async def _as_person(action: Callable[..., Any], *args: Any) -> Any:
    """Run one of the emulator's blocking actions; Slack's refusals become a 400."""
    try:
        return await asyncio.to_thread(action, *args)
    except (SlackError, InteractionError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": str(exc)}), content_type="application/json"
        ) from exc
