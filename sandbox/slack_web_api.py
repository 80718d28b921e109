"""Slack's Web API over HTTP: ``GET|POST /api/<method>`` on an aiohttp application.

slack_sdk sends some methods as JSON bodies (token in ``Authorization: Bearer``) and others
as form fields or query parameters (token as a header or a ``token`` parameter); all of
these are accepted. Responses follow Slack's wire format: HTTP 200 with ``{"ok": true, …}``
or ``{"ok": false, "error": "<code>"}``, and HTTP 429 with ``Retry-After`` when rate limited.

Every call is recorded in a `RequestLog`, and a `FaultInjector` can make the next call(s)
of a method fail or answer late (see `sandbox.slack_faults`), for testing how the product
copes with Slack's errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from sandbox.slack_block_rules import block_problem
from sandbox.slack_faults import ApiCall, FaultInjector, RequestLog
from sandbox.slack_search import (
    SearchRequest,
    check_action_token,
    decode_cursor,
    search_messages,
)
from sandbox.slack_workspace import (
    Identity,
    JsonDict,
    Message,
    SlackError,
    SlackWorkspace,
    parse_ts,
)

# Methods that authenticate with the app's client credentials instead of a token.
_CLIENT_AUTH_METHODS = frozenset({"oauth.v2.access"})
_HISTORY_DEFAULT_LIMIT = 100
_REPLIES_DEFAULT_LIMIT = 1000
_MAX_LIMIT = 1000
_TRUE = frozenset({"1", "true", "True", "TRUE", "yes"})


class WorkspaceEvents(Protocol):
    """Told about changes made through the API, to deliver the matching Events API events."""

    def message_posted(self, message: Message) -> None: ...

    def message_changed(self, before: Message, after: Message) -> None: ...

    def message_deleted(self, message: Message) -> None: ...

    def reaction_changed(self, added: bool, user_id: str, message: Message, name: str) -> None: ...


@dataclass(frozen=True)
class ApiRequest:
    """A call's parameters with Slack's lenient typing (form strings, JSON values)."""

    method: str
    params: JsonDict
    caller: Identity
    client_credentials: tuple[str, str] | None = None

    def get(self, name: str) -> str | None:
        """A parameter as a string; absent and empty are the same, as in Slack."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    def require(self, name: str, error: str) -> str:
        value = self.get(name)
        if value is None:
            raise SlackError(error)
        return value

    def flag(self, name: str) -> bool:
        value = self.params.get(name)
        if isinstance(value, bool):
            return value
        return str(value) in _TRUE

    def json(self, name: str, error: str) -> Any:
        """A structured parameter: a JSON value in a JSON body, a JSON string in a form."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise SlackError(error) from None
        return value

    def limit(self, default: int) -> int:
        raw = self.get("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise SlackError("invalid_limit") from None
        return default if limit <= 0 else min(limit, _MAX_LIMIT)


Handler = Callable[[ApiRequest], JsonDict]


class SlackMethods:
    """The Web API methods, each taking an `ApiRequest` and returning the response body."""

    def __init__(self, workspace: SlackWorkspace, events: WorkspaceEvents | None = None) -> None:
        self.workspace = workspace
        self.events = events
        self.table: dict[str, Handler] = {
            "api.test": self.api_test,
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.info": self.conversations_info,
            "conversations.join": self.conversations_join,
            "conversations.members": self.conversations_members,
            "reactions.add": self.reactions_add,
            "reactions.remove": self.reactions_remove,
            "reactions.get": self.reactions_get,
            "users.info": self.users_info,
            "users.lookupByEmail": self.users_lookup_by_email,
            "usergroups.users.list": self.usergroups_users_list,
            "views.open": self.views_open,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
            "chat.startStream": self.chat_start_stream,
            "chat.appendStream": self.chat_append_stream,
            "chat.stopStream": self.chat_stop_stream,
            "assistant.threads.setStatus": self.assistant_threads_set_status,
            "assistant.threads.setSuggestedPrompts": self.assistant_threads_set_suggested_prompts,
            "assistant.threads.setTitle": self.assistant_threads_set_title,
            "assistant.search.context": self.assistant_search_context,
            "oauth.v2.access": self.oauth_v2_access,
        }

    # -- auth ---------------------------------------------------------------------------------

    def api_test(self, request: ApiRequest) -> JsonDict:
        return {"args": {k: v for k, v in request.params.items() if k != "token"}}

    def auth_test(self, request: ApiRequest) -> JsonDict:
        ws = self.workspace
        caller = request.caller
        response: JsonDict = {
            "url": ws.team.url,
            "team": ws.team.name,
            "user": ws.user(caller.user_id).name,
            "team_id": ws.team.id,
            "user_id": caller.user_id,
        }
        if caller.bot_id is not None:
            response["bot_id"] = caller.bot_id
        response["is_enterprise_install"] = False
        return response

    def oauth_v2_access(self, request: ApiRequest) -> JsonDict:
        client_id, client_secret = request.client_credentials or (
            request.get("client_id") or "",
            request.get("client_secret") or "",
        )
        return self.workspace.exchange_oauth_code(
            request.require("code", "invalid_code"),
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=request.get("redirect_uri"),
        )

    # -- chat ---------------------------------------------------------------------------------

    def chat_post_message(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        text = request.get("text") or ""
        blocks = self._blocks(request)
        attachments = self._attachments(request)
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        icons = None
        if request.get("icon_emoji") is not None:
            icons = {"emoji": request.get("icon_emoji")}
        elif request.get("icon_url") is not None:
            icons = {f"image_{size}": request.get("icon_url") for size in (36, 48, 72)}
        is_bot = request.caller.is_bot
        message = self.workspace.post_message(
            channel,
            user=request.caller.user_id,
            text=text,
            blocks=blocks,
            attachments=attachments,
            metadata=self._metadata(request),
            thread_ts=request.get("thread_ts"),
            reply_broadcast=request.flag("reply_broadcast"),
            username=request.get("username") if is_bot else None,
            icons=icons if is_bot else None,
        )
        if self.events is not None:
            self.events.message_posted(message)
        return {"channel": message.channel, "ts": message.ts, "message": message.to_slack()}

    def chat_update(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        ts = request.require("ts", "message_not_found")
        current = self.workspace.message(channel, ts)
        if current.user != request.caller.user_id:
            raise SlackError("cant_update_message")
        text = request.get("text")
        blocks = self._blocks(request)
        attachments = self._attachments(request)
        if text is None and blocks is None and attachments is None:
            raise SlackError("no_text")
        before, after = self.workspace.update_message(
            channel,
            ts,
            editor=request.caller.user_id,
            text=text,
            blocks=blocks,
            attachments=attachments,
            metadata=self._metadata(request),
        )
        if self.events is not None:
            self.events.message_changed(before, after)
        rendered = after.to_slack()
        return {"channel": after.channel, "ts": after.ts, "text": after.text, "message": rendered}

    def chat_delete(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        ts = request.require("ts", "message_not_found")
        if self.workspace.message(channel, ts).user != request.caller.user_id:
            raise SlackError("cant_delete_message")
        deleted = self.workspace.delete_message(channel, ts)
        if self.events is not None:
            self.events.message_deleted(deleted)
        return {"channel": deleted.channel, "ts": deleted.ts}

    def chat_post_ephemeral(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        user = request.require("user", "user_not_found")
        self.workspace.user(user)
        if not self.workspace.is_member(channel, user):
            raise SlackError("user_not_in_channel")
        text = request.get("text") or ""
        blocks = self._blocks(request)
        if not text and not blocks and not self._attachments(request):
            raise SlackError("no_text")
        message = self.workspace.post_ephemeral(
            channel, user=user, text=text, blocks=blocks, thread_ts=request.get("thread_ts")
        )
        return {"message_ts": message.ts}

    # Streaming (chat.startStream / appendStream / stopStream): a bot reply in a thread that
    # grows as the app appends markdown, until it is stopped or Slack's lifetime ends it.

    def chat_start_stream(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        thread_ts = request.require("thread_ts", "invalid_arguments")
        if not self.workspace.channel(channel).is_im and (
            request.get("recipient_user_id") is None or request.get("recipient_team_id") is None
        ):
            # Slack needs to know whom a stream in a shared channel is for.
            raise SlackError("invalid_arguments")
        message = self.workspace.start_stream(
            channel,
            user=request.caller.user_id,
            thread_ts=thread_ts,
            text=request.get("markdown_text") or "",
        )
        if self.events is not None:
            self.events.message_posted(message)
        return {"channel": message.channel, "ts": message.ts}

    def chat_append_stream(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        text = request.require("markdown_text", "no_text")
        message = self.workspace.append_stream(
            channel,
            request.require("ts", "message_not_found"),
            user=request.caller.user_id,
            text=text,
        )
        return {"channel": message.channel, "ts": message.ts}

    def chat_stop_stream(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        message = self.workspace.stop_stream(
            channel,
            request.require("ts", "message_not_found"),
            user=request.caller.user_id,
            text=request.get("markdown_text") or "",
            blocks=self._blocks(request),
            metadata=self._metadata(request),
        )
        return {"channel": message.channel, "ts": message.ts, "message": message.to_slack()}

    def chat_get_permalink(self, request: ApiRequest) -> JsonDict:
        channel = self.workspace.channel(request.require("channel", "channel_not_found"))
        message = self.workspace.message(
            channel.id, request.require("message_ts", "message_not_found")
        )
        permalink = f"{self.workspace.team.url}archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            permalink += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": permalink}

    # -- conversations ------------------------------------------------------------------------

    def conversations_history(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        messages = _between(self.workspace.history(channel), request)
        messages.reverse()  # Slack lists a channel newest first
        page, next_cursor = _page(messages, request, _HISTORY_DEFAULT_LIMIT, newest_first=True)
        return {
            "messages": self._render(page, request),
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_replies(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        thread = self.workspace.thread(channel, request.require("ts", "thread_not_found"))
        # The parent always leads the thread; oldest/latest only narrow the replies.
        messages = thread[:1] + _between(thread[1:], request)
        page, next_cursor = _page(messages, request, _REPLIES_DEFAULT_LIMIT, newest_first=False)
        rendered = self._render(page, request)
        if rendered and "latest_reply" in rendered[0]:
            # Read state of the thread for the caller; the sandbox treats every reply as read.
            rendered[0].update(last_read=rendered[0]["latest_reply"], unread_count=0)
        return {
            "messages": rendered,
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_info(self, request: ApiRequest) -> JsonDict:
        channel = self.workspace.channel(request.require("channel", "channel_not_found"))
        info = channel.to_slack(viewer=request.caller.user_id)
        if request.flag("include_num_members"):
            info["num_members"] = len(channel.members)
        return {"channel": info}

    def conversations_members(self, request: ApiRequest) -> JsonDict:
        """A conversation's members, sorted, paged by an offset cursor. A private channel
        answers only callers in it, as Slack does (channel_not_found otherwise)."""
        channel = self.workspace.channel(request.require("channel", "channel_not_found"))
        if (channel.is_private or channel.is_im) and request.caller.user_id not in channel.members:
            raise SlackError("channel_not_found")
        members = sorted(channel.members)
        try:
            start = max(0, int(request.get("cursor") or 0))
        except ValueError:
            raise SlackError("invalid_cursor") from None
        limit = request.limit(100)
        page = members[start : start + limit]
        more = start + limit < len(members)
        return {
            "members": page,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def conversations_join(self, request: ApiRequest) -> JsonDict:
        channel = self.workspace.channel(request.require("channel", "channel_not_found"))
        if channel.is_im or channel.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        joined = self.workspace.join(channel.id, request.caller.user_id)
        info = self.workspace.channel(channel.id).to_slack(viewer=request.caller.user_id)
        response: JsonDict = {"channel": info}
        if not joined:
            response["warning"] = "already_in_channel"
            response["response_metadata"] = {"warnings": ["already_in_channel"]}
        return response

    # -- reactions ----------------------------------------------------------------------------

    def reactions_add(self, request: ApiRequest) -> JsonDict:
        return self._react(request, added=True)

    def reactions_remove(self, request: ApiRequest) -> JsonDict:
        return self._react(request, added=False)

    def _react(self, request: ApiRequest, *, added: bool) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        ts = request.require("timestamp", "message_not_found")
        name = request.require("name", "invalid_name").strip(":")
        user = request.caller.user_id
        if added:
            message = self.workspace.add_reaction(channel, ts, name, user)
        else:
            message = self.workspace.remove_reaction(channel, ts, name, user)
        if self.events is not None:
            self.events.reaction_changed(added, user, message, name)
        return {}

    def reactions_get(self, request: ApiRequest) -> JsonDict:
        channel = self._member_channel(request, request.require("channel", "channel_not_found"))
        message = self.workspace.message(channel, request.require("timestamp", "message_not_found"))
        rendered = message.to_slack(include_metadata=False)
        rendered["permalink"] = self.chat_get_permalink(
            ApiRequest(
                "chat.getPermalink", {"channel": channel, "message_ts": message.ts}, request.caller
            )
        )["permalink"]
        return {"type": "message", "channel": message.channel, "message": rendered}

    # -- users --------------------------------------------------------------------------------

    def users_info(self, request: ApiRequest) -> JsonDict:
        user = self.workspace.user(request.require("user", "user_not_found"))
        return {"user": user.to_slack(self._avatar_base())}

    def users_lookup_by_email(self, request: ApiRequest) -> JsonDict:
        user = self.workspace.user_by_email(request.require("email", "users_not_found"))
        return {"user": user.to_slack(self._avatar_base())}

    def usergroups_users_list(self, request: ApiRequest) -> JsonDict:
        group = request.require("usergroup", "invalid_arguments")
        return {"users": self.workspace.usergroup_members(group)}

    # -- views --------------------------------------------------------------------------------

    def views_open(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        trigger_id = request.require("trigger_id", "invalid_arguments")
        definition = self._view(request)
        user_id = self.workspace.use_trigger_id(trigger_id)
        return {"view": self.workspace.open_view(definition, user_id=user_id).to_slack()}

    def views_update(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        view_id, external_id = request.get("view_id"), request.get("external_id")
        if view_id is None and external_id is None:
            raise SlackError("invalid_arguments")
        view = self.workspace.update_view(
            self._view(request), view_id=view_id, external_id=external_id, hash=request.get("hash")
        )
        return {"view": view.to_slack()}

    def views_publish(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        user_id = request.require("user_id", "invalid_arguments")
        definition = self._view(request)
        if definition.get("type") != "home":
            raise SlackError("invalid_arguments")
        view = self.workspace.publish_home(user_id, definition, hash=request.get("hash"))
        return {"view": view.to_slack()}

    def assistant_threads_set_status(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel_id", "channel_not_found"))
        thread_ts = request.require("thread_ts", "invalid_arguments")
        status = request.get("status") or ""
        self.workspace.set_assistant_status(channel, thread_ts, status)
        return {}

    def assistant_threads_set_suggested_prompts(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel_id", "channel_not_found"))
        prompts = request.json("prompts", "invalid_arguments")
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(
                isinstance(p, dict)
                and isinstance(p.get("title"), str)
                and isinstance(p.get("message"), str)
                for p in prompts
            )
        ):
            raise SlackError("invalid_arguments")
        self.workspace.set_suggested_prompts(
            channel,
            request.require("thread_ts", "invalid_arguments"),
            prompts,
            request.get("title"),
        )
        return {}

    def assistant_threads_set_title(self, request: ApiRequest) -> JsonDict:
        self._require_bot(request)
        channel = self._member_channel(request, request.require("channel_id", "channel_not_found"))
        self.workspace.set_assistant_title(
            channel,
            request.require("thread_ts", "invalid_arguments"),
            request.require("title", "invalid_arguments"),
        )
        return {}

    def assistant_search_context(self, request: ApiRequest) -> JsonDict:
        """The Real-time Search API: see `sandbox.slack_search`."""
        if request.caller.is_bot:
            # A bot searches only on behalf of an event: the action_token Slack put on it.
            check_action_token(self.workspace, request.get("action_token"))
        query = request.require("query", "invalid_arguments")
        # A comma-separated string (form or JSON) or a JSON array.
        types = request.params.get("channel_types") or "public_channel"
        if isinstance(types, str):
            types = types.split(",")
        if not isinstance(types, list):
            raise SlackError("invalid_arguments")
        limit = request.limit(20)
        search = SearchRequest(
            query=query,
            channel_types=frozenset(str(t).strip() for t in types),
            include_bots=request.flag("include_bots"),
            after=_unix_seconds(request, "after"),
            before=_unix_seconds(request, "before"),
            by_time=request.get("sort") == "timestamp",
            ascending=request.get("sort_dir") == "asc",
            limit=min(limit, 20),
            offset=decode_cursor(request.get("cursor")),
        )
        messages, next_cursor = search_messages(self.workspace, request.caller, search)
        return {
            "results": {"messages": messages},
            "response_metadata": {"next_cursor": next_cursor},
        }

    # -- helpers ------------------------------------------------------------------------------

    def _member_channel(self, request: ApiRequest, ref: str) -> str:
        channel = self.workspace.channel(ref)
        if request.caller.user_id not in channel.members:
            raise SlackError("not_in_channel")
        return channel.id

    def _require_bot(self, request: ApiRequest) -> None:
        if not request.caller.is_bot:
            raise SlackError("not_allowed_token_type")

    def _render(self, messages: list[Message], request: ApiRequest) -> list[JsonDict]:
        include_metadata = request.flag("include_all_metadata")
        return [m.to_slack(include_metadata=include_metadata) for m in messages]

    def _avatar_base(self) -> str:
        return f"{self.workspace.team.url}avatars/"

    @staticmethod
    def _blocks(request: ApiRequest) -> list[JsonDict] | None:
        blocks = request.json("blocks", "invalid_blocks_format")
        if blocks is None:
            return None
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
            raise SlackError("invalid_blocks")
        for index, block in enumerate(blocks):
            problem = block_problem(block)
            if problem is not None:
                messages = [f"[ERROR] {problem} [json-pointer:/blocks/{index}]"]
                raise SlackError("invalid_blocks", response_metadata={"messages": messages})
        return blocks

    @staticmethod
    def _attachments(request: ApiRequest) -> list[JsonDict] | None:
        attachments = request.json("attachments", "invalid_attachments")
        if attachments is None:
            return None
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise SlackError("invalid_attachments")
        return attachments

    @staticmethod
    def _metadata(request: ApiRequest) -> JsonDict | None:
        metadata = request.json("metadata", "invalid_metadata_format")
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload", {}), dict)
        ):
            raise SlackError("invalid_metadata_format")
        return {
            "event_type": metadata["event_type"],
            "event_payload": metadata.get("event_payload", {}),
        }

    @staticmethod
    def _view(request: ApiRequest) -> JsonDict:
        view = request.json("view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackError("invalid_arguments")
        return view


def _between(messages: list[Message], request: ApiRequest) -> list[Message]:
    """Messages within the call's ``oldest``/``latest`` bounds (exclusive unless ``inclusive``)."""
    oldest = _bound(request, "oldest") or 0
    latest = _bound(request, "latest")
    inclusive = request.flag("inclusive")

    def within(message: Message) -> bool:
        ts = parse_ts(message.ts)
        above = ts >= oldest if inclusive else ts > oldest
        below = latest is None or (ts <= latest if inclusive else ts < latest)
        return above and below

    return [m for m in messages if within(m)]


def _unix_seconds(request: ApiRequest, name: str) -> float | None:
    raw = request.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        raise SlackError("invalid_arguments") from None


def _bound(request: ApiRequest, name: str) -> int | None:
    raw = request.get(name)
    try:
        return parse_ts(raw) if raw is not None else None
    except ValueError:
        raise SlackError(f"invalid_ts_{name}") from None


def _page(
    messages: list[Message], request: ApiRequest, default_limit: int, *, newest_first: bool
) -> tuple[list[Message], str]:
    """One page of an ordered list, and the cursor for the next ("" on the last page)."""
    cursor = request.get("cursor")
    start = 0
    if cursor is not None:
        after = _decode_cursor(cursor)
        start = next(
            (
                i
                for i, m in enumerate(messages)
                if (parse_ts(m.ts) <= after if newest_first else parse_ts(m.ts) >= after)
            ),
            len(messages),
        )
    limit = request.limit(default_limit)
    page = messages[start : start + limit]
    rest = messages[start + limit :]
    return page, _encode_cursor(rest[0].ts) if rest else ""


def _encode_cursor(ts: str) -> str:
    # Slack's cursors are base64 of "next_ts:<ts digits>"; slack_sdk treats them as opaque.
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        decoded = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    prefix, _, digits = decoded.partition(":")
    if prefix != "next_ts" or not digits.isdigit():
        raise SlackError("invalid_cursor")
    return int(digits)


def create_slack_web_app(
    workspace: SlackWorkspace,
    *,
    events: WorkspaceEvents | None = None,
    log: RequestLog | None = None,
    faults: FaultInjector | None = None,
) -> web.Application:
    """An aiohttp app serving the Web API for ``workspace`` at ``/api/<method>``."""
    methods = SlackMethods(workspace, events)
    request_log = log if log is not None else RequestLog()
    fault_injector = faults if faults is not None else FaultInjector()

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        parse_error: SlackError | None = None
        try:
            params = await _read_params(request)
        except SlackError as error:
            params, parse_error = {}, error
        token = _bearer_token(request) or _as_str(params.pop("token", None))
        call = ApiCall(method, params, token, request.method, time.time())
        headers: dict[str, str] = {}
        fault = fault_injector.take(method)
        if fault is not None:
            call.status, call.response = fault.status, {"ok": False, "error": fault.error}
            headers = fault.headers()
        elif parse_error is not None:
            call.response = {"ok": False, "error": parse_error.error}
        else:
            call.status, call.response = answer(request, call)
        call.held_for = fault_injector.take_delay(method)
        # Logged once answered, so a reader on another thread never sees a half-filled call.
        request_log.record(call)
        if call.held_for > 0:
            # The call has taken effect (and its events are on their way); only the answer waits.
            await fault_injector.hold(call.held_for)
        return web.json_response(call.response, status=call.status, headers=headers)

    def answer(request: web.Request, call: ApiCall) -> tuple[int, JsonDict]:
        handler = methods.table.get(call.method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": call.method}
        if call.method in _CLIENT_AUTH_METHODS:
            caller = Identity("")
            credentials = _basic_credentials(request)
        else:
            if call.token is None:
                return 200, {"ok": False, "error": "not_authed"}
            identity = workspace.identify(call.token)
            if identity is None:
                return 200, {"ok": False, "error": "invalid_auth"}
            caller, credentials = identity, None
        try:
            result = handler(ApiRequest(call.method, call.params, caller, credentials))
        except SlackError as error:
            return 200, {"ok": False, "error": error.error, **error.extra}
        return 200, {"ok": True, **result}

    async def abandon_held(_app: web.Application) -> None:
        # Without this the server's shutdown would wait out every held response.
        fault_injector.abandon_held()
        fault_injector.clear()

    app = web.Application()
    app.router.add_route("*", "/api/{method}", handle)
    app.on_shutdown.append(abandon_held)
    return app


async def _read_params(request: web.Request) -> JsonDict:
    """Query parameters merged with the body, whether JSON, form or multipart."""
    params: JsonDict = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
