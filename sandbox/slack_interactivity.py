"""Slash commands, button clicks and modal submissions, as Slack sends them to an app.

Slack POSTs all three to the app's Request URL as signed
``application/x-www-form-urlencoded`` bodies (the same ``X-Slack-Signature`` as events): a
slash command as plain form fields, an interaction as one ``payload`` field holding JSON
(``block_actions``, ``view_submission``). The app must answer within three seconds. Its
answer can show something at once (a command's ``{"text": …, "response_type": …}``, or
plain text) or change the modal (a submission's ``response_action``); anything later goes
to the interaction's ``response_url`` (see `sandbox.slack_response_urls`).

`InteractionPayloads` builds Slack's payloads from the workspace; `Interactions` plays a
person doing these things, delivers them and applies the app's answer.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandbox.slack_events import USER_AGENT, SlackEventDispatcher, sign
from sandbox.slack_response_urls import Original, ResponsePost, ResponseUrls
from sandbox.slack_types import JsonDict, SlackError
from sandbox.slack_views import View
from sandbox.slack_workspace import Channel, EphemeralMessage, Message, SlackWorkspace, User

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
RESPONSE_WAIT = 5.0  # seconds a test waits by default for the app's response_url posts

_TEXT_INPUTS = frozenset(
    {"plain_text_input", "email_text_input", "url_text_input", "number_text_input"}
)
# Elements clicked like a button: a plain one, and the icon button of context_actions.
_BUTTONS = frozenset({"button", "icon_button"})
_OPTION_SELECTS = frozenset({"static_select", "external_select", "radio_buttons"})
_OPTIONS_SELECTS = frozenset({"multi_static_select", "multi_external_select", "checkboxes"})
# Elements whose state is one ID or date under a key named after the element.
_PICKED = {
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "multi_users_select": "selected_users",
    "multi_conversations_select": "selected_conversations",
    "multi_channels_select": "selected_channels",
}


class InteractionError(Exception):
    """A person cannot do this in Slack: no such button, or no such open modal."""


@dataclass(frozen=True)
class InteractionResult:
    """One interaction delivered to the app, and the app's immediate answer."""

    status: int | None  # None when the app gave no HTTP answer (timeout, refused)
    body: str
    # The answer parsed: a JSON object, or plain text as {"text": body}; None when empty.
    response: JsonDict | None
    payload: JsonDict  # what was sent: a command's form fields, an interaction's JSON
    response_url: str | None
    error: str | None = None  # http_timeout or connection_failed when status is None
    response_urls: ResponseUrls | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def responses(self) -> list[ResponsePost]:
        """What the app has POSTed to this interaction's response_url so far."""
        if self.response_url is None or self.response_urls is None:
            return []
        return self.response_urls.posts(self.response_url)

    def wait_for_responses(
        self, count: int = 1, timeout: float = RESPONSE_WAIT
    ) -> list[ResponsePost]:
        """Block until the app has POSTed ``count`` times to the response_url."""
        if self.response_url is None or self.response_urls is None:
            return []
        return self.response_urls.wait_for_posts(self.response_url, count, timeout)


@dataclass(frozen=True)
class SlashResult(InteractionResult):
    """A slash command delivered to the app; ``response`` is its immediate answer."""

    @property
    def trigger_id(self) -> str:
        return str(self.payload["trigger_id"])


def encode_form(fields: Mapping[str, str]) -> str:
    """A form body encoded the way Slack encodes its requests (``/`` as ``%2F``)."""
    return urllib.parse.urlencode(fields, quote_via=urllib.parse.quote_plus, safe="")


class InteractionPayloads:
    """Slack's request bodies for people interacting with the app in one workspace."""

    def __init__(self, workspace: SlackWorkspace) -> None:
        self.workspace = workspace

    def slash_command(
        self,
        *,
        user: User,
        channel: Channel,
        command: str,
        text: str,
        response_url: str,
        trigger_id: str,
    ) -> dict[str, str]:
        ws = self.workspace
        return {
            "token": ws.app.verification_token,
            "team_id": ws.team.id,
            "team_domain": ws.team.domain,
            "channel_id": channel.id,
            "channel_name": _channel_name(channel),
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": ws.app.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }

    def block_actions(
        self,
        *,
        user: User,
        channel: Channel,
        source: Message | EphemeralMessage,
        action: JsonDict,
        response_url: str,
        trigger_id: str,
    ) -> JsonDict:
        ephemeral = isinstance(source, EphemeralMessage)
        container: JsonDict = {
            "type": "message",
            "message_ts": source.ts,
            "channel_id": channel.id,
            "is_ephemeral": ephemeral,
        }
        if source.thread_ts is not None and source.thread_ts != source.ts:
            container["thread_ts"] = source.thread_ts
        payload: JsonDict = {
            "type": "block_actions",
            **self._who(user),
            "container": container,
            "trigger_id": trigger_id,
            "channel": {"id": channel.id, "name": _channel_name(channel)},
        }
        # Slack sends the message itself only for messages others can see too.
        if isinstance(source, Message):
            payload["message"] = source.to_slack()
        payload.update({"state": {"values": {}}, "response_url": response_url, "actions": [action]})
        return payload

    def view_submission(
        self, *, user: User, view: View, values: Mapping[str, Mapping[str, Any]], trigger_id: str
    ) -> JsonDict:
        rendered = view.to_slack()
        rendered["state"] = {"values": view_state(view, values)}
        return {
            "type": "view_submission",
            **self._who(user),
            "trigger_id": trigger_id,
            "view": rendered,
            "response_urls": [],
        }

    def _who(self, user: User) -> JsonDict:
        ws = self.workspace
        return {
            "team": {"id": ws.team.id, "domain": ws.team.domain},
            # The person's own team: another organisation's, for a Slack Connect member.
            "user": {
                "id": user.id,
                "username": user.name,
                "name": user.name,
                "team_id": user.team_id,
            },
            "api_app_id": ws.app.app_id,
            "token": ws.app.verification_token,
            "enterprise": None,
            "is_enterprise_install": False,
        }


class Interactions:
    """People running commands, clicking buttons and submitting modals, delivered to the app.

    Async methods run on the emulator's event loop.
    """

    def __init__(
        self, workspace: SlackWorkspace, dispatcher: SlackEventDispatcher, urls: ResponseUrls
    ) -> None:
        self.workspace = workspace
        self.dispatcher = dispatcher
        self.urls = urls
        self.payloads = InteractionPayloads(workspace)
        self._session: aiohttp.ClientSession | None = None

    async def slash_command(
        self, user_id: str, channel: str, text: str, command: str = "/agent"
    ) -> SlashResult:
        """Run ``command text`` in a conversation; an answer to show is shown."""
        user, conversation = self._person_in(user_id, channel)
        response_url = self.urls.issue(
            channel=conversation.id, user_id=user.id, original=None, for_command=True
        )
        form = self.payloads.slash_command(
            user=user,
            channel=conversation,
            command=command,
            text=text,
            response_url=response_url,
            trigger_id=self.workspace.issue_trigger_id(user.id),
        )
        status, body, error = await self._post(encode_form(form))
        answer = _parse_answer(body)
        if status == 200 and answer is not None:
            self.urls.show_ack(response_url, answer)
        return SlashResult(status, body, answer, dict(form), response_url, error, self.urls)

    async def click_button(
        self,
        user_id: str,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
    ) -> InteractionResult:
        """Click the button ``action_id`` of a message (or of an ephemeral one the user sees).

        For a ``feedback_buttons`` element (👍 / 👎 in a ``context_actions`` block),
        ``value`` says which of its two buttons: the positive or the negative one's value.
        """
        user, conversation = self._person_in(user_id, channel)
        source = self._message_seen_by(user.id, conversation.id, message_ts)
        found_block, element = find_action(source.blocks or [], action_id, block_id, message_ts)
        kind = element.get("type")
        if kind == "feedback_buttons":
            action = _feedback_action(element, value, message_ts)
        elif kind in _BUTTONS:
            action = {"text": element.get("text")}
            if value is not None or "value" in element:
                action["value"] = value if value is not None else element["value"]
            if "style" in element:
                action["style"] = element["style"]
        else:
            raise InteractionError(
                f"{action_id!r} in message {message_ts} is a {kind}, not a button"
            )
        action = {
            "action_id": action_id,
            "block_id": found_block,
            **action,
            "type": kind,
            "action_ts": self.workspace.next_ts(),
        }
        original = Original(
            conversation.id, source.ts, ephemeral=isinstance(source, EphemeralMessage)
        )
        response_url = self.urls.issue(
            channel=conversation.id, user_id=user.id, original=original, for_command=False
        )
        payload = self.payloads.block_actions(
            user=user,
            channel=conversation,
            source=source,
            action=action,
            response_url=response_url,
            trigger_id=self.workspace.issue_trigger_id(user.id),
        )
        # Slack ignores what an app answers to a block action; only response_url shows things.
        status, body, error = await self._post(_interaction_form(payload))
        answer = _parse_answer(body)
        return InteractionResult(status, body, answer, payload, response_url, error, self.urls)

    async def submit_view(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]]
    ) -> InteractionResult:
        """Press a modal's submit button with ``values[block_id][action_id]`` filled in."""
        user = self.workspace.user(user_id)
        view = self._open_modal_of(user.id, view_id)
        payload = self.payloads.view_submission(
            user=user, view=view, values=values, trigger_id=self.workspace.issue_trigger_id(user.id)
        )
        status, body, error = await self._post(_interaction_form(payload))
        answer = _parse_answer(body)
        if status == 200:
            self._apply_response_action(view, answer)
        return InteractionResult(status, body, answer, payload, None, error, self.urls)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals -----------------------------------------------------------------------------

    def _person_in(self, user_id: str, channel: str) -> tuple[User, Channel]:
        user = self.workspace.user(user_id)
        conversation = self.workspace.channel(channel)
        if user.id not in conversation.members:
            raise SlackError("not_in_channel")
        return user, conversation

    def _message_seen_by(self, user_id: str, channel: str, ts: str) -> Message | EphemeralMessage:
        try:
            return self.workspace.message(channel, ts)
        except SlackError:
            ephemeral = self.workspace.ephemeral_message(user_id, ts)
            if ephemeral.channel != channel:
                raise
            return ephemeral

    def _open_modal_of(self, user_id: str, view_id: str) -> View:
        try:
            view = self.workspace.view(view_id)
        except SlackError:
            raise InteractionError(f"no view {view_id} was ever opened") from None
        if view.type != "modal":
            raise InteractionError(f"view {view_id} is a {view.type} view, not a modal")
        if view.closed:
            raise InteractionError(f"modal {view_id} is closed")
        if view.user_id is not None and view.user_id != user_id:
            raise InteractionError(f"modal {view_id} is open for {view.user_id}, not {user_id}")
        return view

    def _apply_response_action(self, view: View, answer: JsonDict | None) -> None:
        """What Slack does to the modal after the app's answer to its submission."""
        action = (answer or {}).get("response_action")
        new_view = (answer or {}).get("view")
        if action == "errors":
            return  # the modal stays open, showing the errors under the named blocks
        if action == "update" and isinstance(new_view, dict):
            self.workspace.update_view(new_view, view_id=view.id)
        elif action == "push" and isinstance(new_view, dict):
            self.workspace.push_view(view.id, new_view)
        elif action == "clear":
            self.workspace.close_view(view.id, whole_stack=True)
        else:
            self.workspace.close_view(view.id)

    async def _post(self, body: str) -> tuple[int | None, str, str | None]:
        """POST a signed form to the app; (status, body, error) with status None on no answer."""
        url = self.dispatcher.url
        if url is None:
            raise RuntimeError("no request URL: set the app's events_url first")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timestamp = int(time.time())
        headers = {
            "Content-Type": FORM_CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(self.dispatcher.signing_secret, timestamp, body),
        }
        try:
            async with self._session.post(
                url,
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.dispatcher.timeout),
                allow_redirects=False,
            ) as response:
                return response.status, await response.text(), None
        except TimeoutError:
            return None, "", "http_timeout"
        except aiohttp.ClientError:
            return None, "", "connection_failed"


def find_action(
    blocks: list[JsonDict], action_id: str, block_id: str | None, where: str
) -> tuple[str, JsonDict]:
    """The (block_id, element) of the interactive element ``action_id`` in ``blocks``."""
    seen: list[str] = []
    for found_block, element in _interactive_elements(blocks):
        if block_id is not None and found_block != block_id:
            continue
        if element.get("action_id") == action_id:
            return found_block, element
        seen.append(str(element.get("action_id")))
    scope = f" block {block_id!r} of" if block_id is not None else ""
    raise InteractionError(
        f"no element with action_id {action_id!r} in{scope} message {where}; "
        f"its action_ids: {seen or 'none'}"
    )


def view_state(view: View, values: Mapping[str, Mapping[str, Any]]) -> JsonDict:
    """A modal's ``state.values``: every input of the view, filled from ``values``.

    A value is given as Slack's person would pick it (text, an option's value, user IDs);
    a dict is taken as the element's whole state.
    """
    elements = {(b, e.get("action_id")): e for b, e in _interactive_elements(view.blocks)}
    for block_id, actions in values.items():
        for action_id in actions:
            if (block_id, action_id) not in elements:
                known = sorted(f"{b}.{a}" for b, a in elements)
                raise InteractionError(
                    f"modal {view.id} has no input {block_id}.{action_id}; it has {known}"
                )
    state: JsonDict = {}
    for block in view.blocks:
        if block.get("type") != "input" or not isinstance(block.get("element"), dict):
            continue
        element = block["element"]
        block_id, action_id = str(block.get("block_id", "")), str(element.get("action_id", ""))
        state.setdefault(block_id, {})[action_id] = _element_state(element, None)
    for block_id, actions in values.items():
        for action_id, value in actions.items():
            state.setdefault(block_id, {})[action_id] = _element_state(
                elements[(block_id, action_id)], value
            )
    return state


def _interactive_elements(blocks: list[JsonDict]) -> Iterator[tuple[str, JsonDict]]:
    for block in blocks:
        block_id = str(block.get("block_id", ""))
        if block.get("type") in ("actions", "context_actions"):
            candidates = block.get("elements") or []
        elif block.get("type") == "input":
            candidates = [block.get("element")]
        else:
            candidates = [block.get("accessory")]
        for element in candidates:
            if isinstance(element, dict) and "action_id" in element:
                yield block_id, element


def _feedback_action(element: JsonDict, value: str | None, where: str) -> JsonDict:
    """The action of a click on one of a feedback_buttons element's two buttons: Slack
    sends the clicked button's text and value (no field says which side it was)."""
    sides = [element.get("positive_button") or {}, element.get("negative_button") or {}]
    for side in sides:
        if value is not None and side.get("value") == value:
            return {"text": side.get("text"), "value": value}
    offered = [side.get("value") for side in sides]
    raise InteractionError(
        f"feedback buttons {element.get('action_id')!r} in message {where} have the values "
        f"{offered}; say which was clicked (got {value!r})"
    )


def _element_state(element: JsonDict, value: Any) -> JsonDict:
    kind = str(element.get("type", "plain_text_input"))
    if isinstance(value, dict):
        return {"type": kind, **value}
    if kind in _OPTION_SELECTS:
        option = None if value is None else _option(element, str(value))
        return {"type": kind, "selected_option": option}
    if kind in _OPTIONS_SELECTS:
        chosen = [] if value is None else [_option(element, str(v)) for v in value]
        return {"type": kind, "selected_options": chosen}
    if kind in _PICKED:
        key = _PICKED[kind]
        if kind.startswith("multi_"):
            return {"type": kind, key: [] if value is None else list(value)}
        return {"type": kind, key: value}
    return {"type": kind, "value": None if value is None else str(value)}


def _option(element: JsonDict, value: str) -> JsonDict:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return dict(option)
    if element.get("type", "").endswith("external_select"):
        # External options come from the app at typing time; Slack echoes the one picked.
        return {"text": {"type": "plain_text", "text": value}, "value": value}
    raise InteractionError(f"{element.get('action_id')!r} has no option with value {value!r}")


def _interaction_form(payload: JsonDict) -> str:
    return encode_form({"payload": json.dumps(payload, separators=(",", ":"))})


def _parse_answer(body: str) -> JsonDict | None:
    if not body.strip():
        return None
    try:
        parsed: object = json.loads(body)
    except ValueError:
        return {"text": body}  # Slack shows a plain-text answer as the message text
    return parsed if isinstance(parsed, dict) else {"text": body}


def _channel_name(channel: Channel) -> str:
    # Slack names a DM "directmessage" in commands and interaction payloads.
    return "directmessage" if channel.is_im else channel.name
