"""A sandbox Slack for synchronous callers: the Web API, events and interactivity in one handle.

`SlackEmulator` serves the Web API (and the response_urls it hands out) from a background
thread (see `BackgroundServer`), delivers Events API requests, slash commands and
interactions to the app's URL, and lets a test or the sandbox CLI act as a person in the
workspace::

    with SlackEmulator() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.events_url = "http://127.0.0.1:3000/slack/events"
        slack.post_as_user(slack.workspace.roles["requester"], "C0SUPPORT", "<@U0SANDBOT> hi")
        slack.run_slash_command("U0REQUESTER", "C0SUPPORT", "reset my VPN token")
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from sandbox.background import START_TIMEOUT, BackgroundServer, StartStop
from sandbox.slack_events import (
    RESPONSE_TIMEOUT,
    DeliveryAttempt,
    EventSubscriptions,
    SlackEventDispatcher,
    UserActions,
    UserPost,
)
from sandbox.slack_faults import ApiCall, FaultInjector, RequestLog
from sandbox.slack_interactivity import InteractionResult, Interactions, SlashResult
from sandbox.slack_response_urls import ResponsePost, ResponseUrls
from sandbox.slack_views import View
from sandbox.slack_web_api import create_slack_web_app
from sandbox.slack_workspace import JsonDict, Message, SlackWorkspace

T = TypeVar("T")


class SlackEmulator(StartStop):
    """Slack's Web API at `api_url` and Events API delivery to `events_url`."""

    def __init__(
        self,
        workspace: SlackWorkspace | None = None,
        *,
        events_url: str | None = None,
        subscriptions: EventSubscriptions | None = None,
        event_timeout: float = RESPONSE_TIMEOUT,
        retry_delays: Iterable[float] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.workspace = workspace or SlackWorkspace.sandbox()
        self.log = RequestLog()
        self.faults = FaultInjector()
        self.dispatcher = SlackEventDispatcher(
            self.workspace,
            url=events_url,
            subscriptions=subscriptions,
            timeout=event_timeout,
            retry_delays=retry_delays,
        )
        self.actions = UserActions(self.workspace, self.dispatcher)
        self.response_urls = ResponseUrls(self.workspace, self.dispatcher)
        self.interactions = Interactions(self.workspace, self.dispatcher, self.response_urls)
        app = create_slack_web_app(
            self.workspace, events=self.dispatcher, log=self.log, faults=self.faults
        )
        self.response_urls.add_routes(app)
        app.on_cleanup.append(self._close_clients)
        self._server = BackgroundServer(app, host=host, port=port)
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving; returns the Web API base URL (``http://host:port/api/``)."""
        self.response_urls.base_url = self._server.start()
        self._running = True
        return self.api_url

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._server.stop()

    @property
    def api_url(self) -> str:
        """slack_sdk's ``base_url`` format: ends with ``/api/``."""
        return f"{self._server.url}/api/"

    # -- the app's configuration ---------------------------------------------------------------

    @property
    def events_url(self) -> str | None:
        """The app's Request URL for the Events API; None delivers nothing."""
        return self.dispatcher.url

    @events_url.setter
    def events_url(self, url: str | None) -> None:
        self.dispatcher.url = url

    @property
    def signing_secret(self) -> str:
        return self.workspace.app.signing_secret

    @property
    def bot_token(self) -> str:
        return self.workspace.app.bot_token

    @property
    def bot_user_id(self) -> str:
        return self.workspace.app.bot_user_id

    # -- people acting in the workspace ---------------------------------------------------------

    def post_as_user(
        self,
        user_id: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        *,
        blocks: list[JsonDict] | None = None,
    ) -> UserPost:
        """Post as a person and wait for the app_mention / message delivery to the app."""
        post = self.actions.post_as_user(user_id, channel, text, thread_ts, blocks=blocks)
        return self._call(post)

    def react_as_user(
        self, user_id: str, channel: str, ts: str, name: str
    ) -> list[DeliveryAttempt]:
        return self._call(self.actions.react_as_user(user_id, channel, ts, name))

    def open_assistant_thread(self, user_id: str, context_channel: str | None = None) -> UserPost:
        """Open the app's side panel as a person; the thread's root is the returned post."""
        return self._call(self.actions.open_assistant_thread(user_id, context_channel))

    def change_assistant_context(
        self, user_id: str, channel: str, thread_ts: str, context_channel: str
    ) -> list[DeliveryAttempt]:
        """The person moved to ``context_channel`` while the side panel's thread was open."""
        return self._call(
            self.actions.change_assistant_context(user_id, channel, thread_ts, context_channel)
        )

    def unreact_as_user(
        self, user_id: str, channel: str, ts: str, name: str
    ) -> list[DeliveryAttempt]:
        return self._call(self.actions.unreact_as_user(user_id, channel, ts, name))

    # -- people using the app's commands, buttons and modals -----------------------------------

    def run_slash_command(
        self, user_id: str, channel: str, command_text: str, command: str = "/agent"
    ) -> SlashResult:
        """Run ``{command} {command_text}`` as a person; returns the app's immediate answer.

        An answer with text or blocks is shown as Slack would (ephemeral unless
        ``response_type`` is ``in_channel``); later posts to its response_url are in
        `SlashResult.responses`.
        """
        return self._call(self.interactions.slash_command(user_id, channel, command_text, command))

    def click_button(
        self,
        user_id: str,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
    ) -> InteractionResult:
        """Click a button in a message; raises `InteractionError` if it has no such button."""
        click = self.interactions.click_button(
            user_id, channel, message_ts, action_id, value, block_id
        )
        return self._call(click)

    def submit_view(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, object]]
    ) -> InteractionResult:
        """Submit an open modal with ``values[block_id][action_id]``; applies response_action."""
        return self._call(self.interactions.submit_view(user_id, view_id, values))

    def last_view(self, user_id: str) -> View | None:
        """The modal open on someone's screen (the one a button's listener opened), if any."""
        return self.workspace.last_view(user_id)

    def response_posts(self, url: str | None = None) -> list[ResponsePost]:
        """Everything the app POSTed to response_urls (or to one of them), oldest first."""
        return self.response_urls.posts(url)

    # -- raw Events API requests ---------------------------------------------------------------

    def deliver(
        self,
        envelope_or_event: JsonDict,
        retry_num: int | None = None,
        bad_signature: bool = False,
        stale: bool = False,
        retry_reason: str = "http_timeout",
    ) -> tuple[int, str]:
        """POST one event (or a whole envelope) to `events_url`; returns (status, body).

        The status is 0 when the app gave no HTTP answer (timeout, refused connection).
        """
        attempt = self._call(
            self.dispatcher.deliver(
                envelope_or_event,
                retry_num=retry_num,
                retry_reason=retry_reason,
                bad_signature=bad_signature,
                stale=stale,
            )
        )
        return attempt.status or 0, attempt.body

    def verify_events_url(self) -> bool:
        """Send Slack's url_verification challenge; True when the app answers it."""
        return self._call(self.dispatcher.verify_url())

    def deliveries(self, event_type: str | None = None) -> list[DeliveryAttempt]:
        return self.dispatcher.attempts(event_type)

    def wait_for_deliveries(self, timeout: float = START_TIMEOUT) -> None:
        """Block until background deliveries (from the bot's own API calls) are done."""
        self._server.call(self.dispatcher.drain(), timeout=timeout)

    # -- reading the workspace -----------------------------------------------------------------

    def thread(self, channel: str, ts: str) -> list[Message]:
        return self.workspace.thread(channel, ts)

    def history(self, channel: str) -> list[Message]:
        return self.workspace.history(channel)

    # -- test controls -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail; see `FaultInjector.fail_next`."""
        self.faults.fail_next(method, error, status, retry_after, times)

    def delay_response(self, method: str, seconds: float, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``method`` but hold each answer ``seconds``.

        The effect is applied at once (a message is stored and its events go out), so a
        test can kill the caller after Slack acted and before the caller heard. Responses
        still held when the emulator stops are dropped with the connection.
        """
        self.faults.delay_next(method, seconds, times)

    def calls(self, method: str | None = None) -> list[ApiCall]:
        return self.log.calls(method)

    # -- internals -----------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._running:
            coro.close()
            raise RuntimeError("the Slack emulator is not running; call start() first")
        # Allow for every attempt timing out and for the retry delays in between.
        budget = self.dispatcher.timeout * (1 + len(self.dispatcher.retry_delays))
        budget += sum(self.dispatcher.retry_delays) + START_TIMEOUT
        return self._server.call(coro, timeout=budget)

    async def _close_clients(self, _app: web.Application) -> None:
        await self.interactions.close()
        await self.dispatcher.close()
