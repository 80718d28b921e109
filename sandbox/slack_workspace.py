"""The in-memory state of a sandbox Slack workspace.

Plain dataclasses for the team, its people and user groups, conversations and messages,
and views (kept by `sandbox.slack_views.ViewStore`), held by a
`SlackWorkspace` that guards them with one lock: the Web API server mutates the state on
its event loop while tests and the sandbox CLI read it from other threads. Everything the
workspace hands out is a deep copy, so a caller can never observe a half-applied change.

Operations raise `SlackError` with the error code Slack itself would return
(``channel_not_found``, ``message_not_found``, ``already_reacted`` …). Who may do what
(membership, authorship) is decided by the Web API layer, not here.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

# Re-exported: the emulator's modules and tests import these from the workspace.
from sandbox.slack_types import JsonDict as JsonDict
from sandbox.slack_types import SlackError as SlackError
from sandbox.slack_views import View as View
from sandbox.slack_views import ViewStore

MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

# Slack's limit on message text; longer posts fail with msg_too_long.
MAX_TEXT_LENGTH = 40_000
# chat.startStream / chat.appendStream take at most this much markdown_text per call.
MAX_STREAM_CHUNK = 12_000
# Slack ends a streamed message about five minutes after it started, stopped or not.
STREAM_LIFETIME = 300.0  # seconds


def format_ts(micros: int) -> str:
    """Slack's message timestamp: seconds, a dot, and six digits of microseconds."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def parse_ts(ts: str) -> int:
    """Microseconds since the epoch from a Slack ts; raises ValueError if malformed."""
    seconds, _, fraction = ts.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 6:
        raise ValueError(f"not a Slack ts: {ts!r}")
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0") or 0)


def mentioned_user_ids(text: str) -> list[str]:
    return MENTION.findall(text)


def rich_text_blocks(text: str, block_id: str) -> list[JsonDict]:
    """The rich_text block Slack's clients attach to a message typed by a person."""
    elements: list[JsonDict] = []
    position = 0
    for match in MENTION.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": block_id, "elements": [section]}]


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    domain: str
    url: str = ""

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"https://{self.domain}.slack.com/")


@dataclass(frozen=True)
class SlackApp:
    """The one app installed in the workspace: its bot identity and its credentials."""

    app_id: str = "A0SANDBOX"
    name: str = "chatops"
    bot_id: str = "B0SANDBOT"
    bot_user_id: str = "U0SANDBOT"
    # Fixed, public, sandbox-only credentials: nothing outside the sandbox accepts them, and
    # fixed values let a local app be configured once.
    bot_token: str = "xoxb-0sandbox-0bot-token"  # noqa: S105
    signing_secret: str = "sandbox-signing-secret"  # noqa: S105
    verification_token: str = "sandbox-verification-token"  # noqa: S105
    client_id: str = "0000000000.0000000001"
    client_secret: str = "sandbox-client-secret"  # noqa: S105
    scopes: tuple[str, ...] = (
        "app_mentions:read",
        "channels:history",
        "channels:join",
        "channels:read",
        "chat:write",
        "groups:history",
        "im:history",
        "reactions:read",
        "reactions:write",
        "users:read",
        "users:read.email",
        "assistant:write",
        "commands",
        "usergroups:read",
    )
    # Slack gives plain bot-token posts no subtype; "bot_message" is for classic bots and
    # posts that override username/icon. Set this to mark every bot post "bot_message".
    bot_messages_have_subtype: bool = False


@dataclass
class User:
    id: str
    name: str
    real_name: str
    team_id: str
    email: str | None = None
    title: str = ""
    token: str | None = None  # a user token (xoxp-…) so a person can also call the API
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    bot_id: str | None = None
    app_id: str | None = None
    deleted: bool = False
    color: str = "9f69e7"
    tz: str = "Europe/London"
    tz_label: str = "Greenwich Mean Time"
    tz_offset: int = 0
    updated: int = 0

    def to_slack(self, avatar_base: str) -> JsonDict:
        avatar_hash = hashlib.sha1(self.id.encode(), usedforsecurity=False).hexdigest()[:12]
        images = {f"image_{size}": f"{avatar_base}{self.id}_{size}.png" for size in _AVATAR_SIZES}
        first, _, last = self.real_name.partition(" ")
        profile: JsonDict = {
            "title": self.title,
            "phone": "",
            "skype": "",
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "status_text": "",
            "status_emoji": "",
            "status_emoji_display_info": [],
            "status_expiration": 0,
            "avatar_hash": avatar_hash,
            "first_name": first,
            "last_name": last,
            **images,
            "image_original": images["image_512"],
            "is_custom_image": False,
            "status_text_canonical": "",
            "team": self.team_id,
        }
        if self.is_bot:
            profile.update(
                {"bot_id": self.bot_id, "api_app_id": self.app_id, "always_active": True}
            )
        else:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": self.color,
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": self.tz_label,
            "tz_offset": self.tz_offset,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": self.updated,
            "is_email_confirmed": not self.is_bot,
            "has_2fa": False,
            "who_can_share_contact_card": "EVERYONE",
        }


_AVATAR_SIZES = (24, 32, 48, 72, 192, 512, 1024)


@dataclass
class Channel:
    id: str
    name: str
    created: int
    creator: str
    members: set[str] = field(default_factory=set)
    topic: str = ""
    purpose: str = ""
    is_private: bool = False
    is_general: bool = False
    im_user: str | None = None  # set for a direct-message conversation with the bot
    # A Slack Connect channel: shared with people of another organisation.
    is_ext_shared: bool = False

    @property
    def is_im(self) -> bool:
        return self.im_user is not None

    @property
    def channel_type(self) -> Literal["channel", "group", "im"]:
        """The Events API's ``channel_type`` for messages in this conversation."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    def to_slack(self, viewer: str) -> JsonDict:
        is_channel = not self.is_im and not self.is_private
        info: JsonDict = {
            "id": self.id,
            "name": self.name,
            "is_channel": is_channel,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_mpim": False,
            "is_private": self.is_private or self.is_im,
            "created": self.created,
            "is_archived": False,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": self.is_ext_shared,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "parent_conversation": None,
            "creator": self.creator,
            "is_ext_shared": self.is_ext_shared,
            "shared_team_ids": [],
            "pending_connected_team_ids": [],
            "is_member": viewer in self.members,
            "is_read_only": False,
            "last_read": "0000000000.000000",
            "locale": "en-US",
            "topic": {"value": self.topic, "creator": self.creator, "last_set": self.created},
            "purpose": {"value": self.purpose, "creator": self.creator, "last_set": self.created},
            "previous_names": [],
        }
        if self.im_user is not None:
            info["user"] = self.im_user
            info["is_user_deleted"] = False
        return info


@dataclass
class Reaction:
    name: str
    users: list[str] = field(default_factory=list)

    def to_slack(self) -> JsonDict:
        return {"name": self.name, "users": list(self.users), "count": len(self.users)}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    user: str | None
    team: str
    subtype: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    bot_profile: JsonDict | None = None
    username: str | None = None
    icons: JsonDict | None = None
    client_msg_id: str | None = None
    blocks: list[JsonDict] | None = None
    attachments: list[JsonDict] | None = None
    metadata: JsonDict | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None
    reply_broadcast: bool = False
    reply_ts: list[str] = field(default_factory=list)  # filled on a thread's parent
    reply_users: list[str] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    edited: JsonDict | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_slack(self, *, include_metadata: bool = True) -> JsonDict:
        """The message object as Slack's Web API and Events API render it."""
        out: JsonDict = {"type": "message"}
        if self.subtype is not None:
            out["subtype"] = self.subtype
        out["text"] = self.text
        if self.user is not None:
            out["user"] = self.user
        out["ts"] = self.ts
        if self.client_msg_id is not None:
            out["client_msg_id"] = self.client_msg_id
        if self.bot_id is not None:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        if self.username is not None:
            out["username"] = self.username
        if self.icons is not None:
            out["icons"] = dict(self.icons)
        out["team"] = self.team
        if self.bot_profile is not None:
            out["bot_profile"] = copy.deepcopy(self.bot_profile)
        if self.blocks is not None:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments is not None:
            out["attachments"] = copy.deepcopy(self.attachments)
        if self.metadata is not None and include_metadata:
            out["metadata"] = copy.deepcopy(self.metadata)
        if self.edited is not None:
            out["edited"] = dict(self.edited)
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.is_reply and self.parent_user_id is not None:
            out["parent_user_id"] = self.parent_user_id
        if self.reply_ts:
            out.update(
                {
                    "reply_count": len(self.reply_ts),
                    "reply_users_count": len(self.reply_users),
                    "latest_reply": self.reply_ts[-1],
                    "reply_users": list(self.reply_users),
                    "is_locked": False,
                    "subscribed": False,
                }
            )
        if self.reactions:
            out["reactions"] = [reaction.to_slack() for reaction in self.reactions]
        return out


@dataclass
class EphemeralMessage:
    channel: str
    user: str  # the only person who sees it
    ts: str
    text: str
    blocks: list[JsonDict] | None = None
    thread_ts: str | None = None


@dataclass
class UserGroup:
    """A user group (Slack's "subteam"), which people @-mention by its handle."""

    id: str
    handle: str
    name: str
    users: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Identity:
    """Who a token speaks for."""

    user_id: str
    bot_id: str | None = None

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None


@dataclass
class _OAuthGrant:
    installer: str
    redirect_uri: str | None


class SlackWorkspace:
    """A team, its people and conversations, and everything posted there."""

    def __init__(
        self,
        team: Team,
        app: SlackApp,
        users: Iterable[User],
        channels: Iterable[Channel],
        *,
        roles: dict[str, str] | None = None,
        usergroups: Iterable[UserGroup] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.team = team
        self.app = app
        self.roles = dict(roles or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._users = {user.id: user for user in users}
        self._usergroups = {group.id: group for group in usergroups}
        self._channels = {channel.id: channel for channel in channels}
        self._messages: dict[str, dict[str, Message]] = {cid: {} for cid in self._channels}
        self._ephemeral: list[EphemeralMessage] = []
        self._views = ViewStore(team_id=team.id, app_id=app.app_id, bot_id=app.bot_id, clock=clock)
        self._oauth_codes: dict[str, _OAuthGrant] = {}
        self._assistant_status: dict[tuple[str, str], str] = {}
        self._assistant_prompts: dict[tuple[str, str], JsonDict] = {}
        self._assistant_titles: dict[tuple[str, str], str] = {}
        # Messages still being streamed (chat.startStream), with when each stream started.
        self._streaming: dict[tuple[str, str], float] = {}
        self._streamed: set[tuple[str, str]] = set()  # every message ever started as a stream
        self._last_ts = 0

    @classmethod
    def sandbox(
        cls, *, app: SlackApp | None = None, clock: Callable[[], float] = time.time
    ) -> SlackWorkspace:
        """The default sandbox: three people, the bot, and #general/#support/#approvals/#random.

        The bot is in every channel but #random, so #random is where ``not_in_channel``
        and ``conversations.join`` can be seen.
        """
        app = app or SlackApp()
        team = Team(id="T0SANDBOX", name="Sandbox", domain="sandbox")
        created = int(clock())
        people = [
            User(
                "U0REQUESTER",
                "riley",
                "Riley Requester",
                team.id,
                "riley@sandbox.example",
                title="Support engineer",
                token="xoxp-0sandbox-0requester",  # noqa: S106 - a fake, sandbox-only token
            ),
            User(
                "U0APPROVER",
                "avery",
                "Avery Approver",
                team.id,
                "avery@sandbox.example",
                title="Engineering manager",
                token="xoxp-0sandbox-0approver",  # noqa: S106 - a fake, sandbox-only token
            ),
            User(
                "U0ADMIN",
                "morgan",
                "Morgan Admin",
                team.id,
                "morgan@sandbox.example",
                title="Workspace admin",
                token="xoxp-0sandbox-0admin",  # noqa: S106 - a fake, sandbox-only token
                is_admin=True,
                is_owner=True,
            ),
        ]
        bot = User(
            app.bot_user_id,
            app.name,
            app.name,
            team.id,
            is_bot=True,
            bot_id=app.bot_id,
            app_id=app.app_id,
        )
        for person in [*people, bot]:
            person.updated = created
        humans = {person.id for person in people}
        admin = "U0ADMIN"
        channels = [
            Channel("C0GENERAL", "general", created, admin, humans | {bot.id}, is_general=True,
                    purpose="Company-wide announcements and work-based matters"),
            Channel("C0SUPPORT", "support", created, admin, humans | {bot.id},
                    purpose="Ask for help; the bot answers from company knowledge"),
            Channel("C0APPROVALS", "approvals", created, admin, humans | {bot.id},
                    purpose="Requests that need a person's approval"),
            Channel("C0RANDOM", "random", created, admin, set(humans),
                    purpose="Non-work banter; the bot has not joined"),
        ]  # fmt: skip
        for person in people:
            dm_id = "D0" + person.id.removeprefix("U0")
            channels.append(
                Channel(dm_id, "", created, person.id, {person.id, bot.id}, im_user=person.id)
            )
        roles = {"requester": "U0REQUESTER", "approver": "U0APPROVER", "admin": admin}
        approvers = UserGroup("S0APPROVERS", "approvers", "Approvers", ["U0APPROVER"])
        return cls(
            team, app, [*people, bot], channels, roles=roles, usergroups=[approvers], clock=clock
        )

    # -- clock ---------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A fresh ts from the clock, strictly greater than every ts handed out before."""
        with self._lock:
            self._last_ts = max(int(self._clock() * 1_000_000), self._last_ts + 1)
            return format_ts(self._last_ts)

    def now(self) -> float:
        return self._clock()

    # -- people ----------------------------------------------------------------------------

    def user(self, user_id: str) -> User:
        with self._lock:
            try:
                return copy.deepcopy(self._users[user_id])
            except KeyError:
                raise SlackError("user_not_found") from None

    def user_by_email(self, email: str) -> User:
        with self._lock:
            for user in self._users.values():
                if user.email is not None and user.email.lower() == email.lower():
                    return copy.deepcopy(user)
        raise SlackError("users_not_found")

    def users(self) -> list[User]:
        with self._lock:
            return copy.deepcopy(list(self._users.values()))

    def role(self, name: str) -> User:
        """The person playing a role in the sandbox: "requester", "approver" or "admin"."""
        return self.user(self.roles[name])

    def add_user(self, user: User) -> User:
        """Add a person. With a `team_id` other than the workspace's, a member of another
        organisation (Slack Connect): add them to a channel with `is_ext_shared` set."""
        with self._lock:
            if user.id in self._users:
                raise SlackError("already_in_team")
            self._users[user.id] = copy.deepcopy(user)
            return copy.deepcopy(user)

    def usergroup_members(self, group_id: str) -> list[str]:
        """The user IDs in a user group, in the order they were added."""
        with self._lock:
            group = self._usergroups.get(group_id)
            if group is None:
                raise SlackError("no_such_subteam")
            return list(group.users)

    def add_usergroup(self, group: UserGroup) -> UserGroup:
        """Create a user group, as an admin would in Slack's settings."""
        with self._lock:
            if group.id in self._usergroups:
                raise SlackError("name_already_exists")
            self._usergroups[group.id] = copy.deepcopy(group)
            return copy.deepcopy(group)

    @property
    def bot_user(self) -> User:
        return self.user(self.app.bot_user_id)

    def bot_profile(self) -> JsonDict:
        base = f"{self.team.url}avatars/{self.app.bot_id}"
        return {
            "id": self.app.bot_id,
            "deleted": False,
            "name": self.app.name,
            "updated": self._users[self.app.bot_user_id].updated,
            "app_id": self.app.app_id,
            "icons": {f"image_{size}": f"{base}_{size}.png" for size in (36, 48, 72)},
            "team_id": self.team.id,
        }

    def identify(self, token: str) -> Identity | None:
        """Who a token belongs to, or None when Slack would answer ``invalid_auth``."""
        if token == self.app.bot_token:
            return Identity(self.app.bot_user_id, self.app.bot_id)
        with self._lock:
            for user in self._users.values():
                if user.token is not None and user.token == token:
                    return Identity(user.id)
        return None

    # -- conversations -----------------------------------------------------------------------

    def channel(self, ref: str) -> Channel:
        """A conversation by ID, ``#name`` or name; a user ID means the bot's DM with them."""
        with self._lock:
            return copy.deepcopy(self._resolve(ref))

    def channels(self) -> list[Channel]:
        with self._lock:
            return copy.deepcopy(list(self._channels.values()))

    def is_member(self, channel: str, user_id: str) -> bool:
        with self._lock:
            return user_id in self._resolve(channel).members

    def join(self, channel: str, user_id: str) -> bool:
        """Add a member; False when they were already in."""
        with self._lock:
            members = self._resolve(channel).members
            joined = user_id not in members
            members.add(user_id)
            return joined

    def add_channel(self, channel: Channel) -> Channel:
        """Create a conversation (a new channel, or one shared through Slack Connect)."""
        with self._lock:
            if channel.id in self._channels:
                raise SlackError("name_taken")
            self._channels[channel.id] = copy.deepcopy(channel)
            self._messages[channel.id] = {}
            return copy.deepcopy(channel)

    def _resolve(self, ref: str) -> Channel:
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if channel.name and channel.name == name:
                return channel
            if channel.im_user is not None and channel.im_user == ref:
                return channel
        raise SlackError("channel_not_found")

    # -- messages ----------------------------------------------------------------------------

    def post_message(
        self,
        channel: str,
        *,
        user: str,
        text: str = "",
        blocks: list[JsonDict] | None = None,
        attachments: list[JsonDict] | None = None,
        metadata: JsonDict | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        username: str | None = None,
        icons: JsonDict | None = None,
        posted_at: float | None = None,
    ) -> Message:
        """Store a message by ``user`` (a person, or the bot user for the app's posts).

        ``posted_at``: a Unix time in the past, for history seeded before a scenario (a
        message from last week); its ts is that time, not the clock's."""
        if len(text) > MAX_TEXT_LENGTH:
            raise SlackError("msg_too_long")
        with self._lock:
            conversation = self._resolve(channel)
            messages = self._messages[conversation.id]
            if posted_at is None:
                ts = self.next_ts()
            else:
                micros = int(posted_at * 1_000_000)
                while format_ts(micros) in messages:
                    micros += 1
                ts = format_ts(micros)
            is_bot = user == self.app.bot_user_id
            message = Message(
                channel=conversation.id,
                ts=ts,
                text=text,
                user=user,
                team=self.team.id,
                attachments=copy.deepcopy(attachments),
                metadata=copy.deepcopy(metadata),
            )
            if is_bot:
                customised = username is not None or icons is not None
                if customised or self.app.bot_messages_have_subtype:
                    message.subtype = "bot_message"
                message.bot_id = self.app.bot_id
                message.app_id = self.app.app_id
                message.bot_profile = self.bot_profile()
                message.username = username
                message.icons = copy.deepcopy(icons)
                message.blocks = _with_block_ids(blocks, ts)
            else:
                message.client_msg_id = str(uuid.uuid4())
                message.blocks = (
                    _with_block_ids(blocks, ts)
                    if blocks is not None
                    else rich_text_blocks(text, _block_id(ts, 0))
                )
            if thread_ts is not None:
                parent = messages.get(thread_ts)
                if parent is not None and parent.is_reply:
                    # Replying to a reply lands in the reply's thread, as in Slack.
                    parent = messages.get(parent.thread_ts or "")
                message.thread_ts = parent.ts if parent is not None else thread_ts
                if parent is not None:
                    parent.thread_ts = parent.ts
                    parent.reply_ts.append(ts)
                    if user not in parent.reply_users:
                        parent.reply_users.append(user)
                    message.parent_user_id = parent.user
                if reply_broadcast:
                    message.reply_broadcast = True
                    message.subtype = "thread_broadcast"
            messages[ts] = message
            return copy.deepcopy(message)

    def update_message(
        self,
        channel: str,
        ts: str,
        *,
        editor: str,
        text: str | None = None,
        blocks: list[JsonDict] | None = None,
        attachments: list[JsonDict] | None = None,
        metadata: JsonDict | None = None,
        replace: bool = False,
    ) -> tuple[Message, Message]:
        """Edit a message; returns copies of (before, after).

        Parts left out stay as they were, unless ``replace`` (a response_url's
        ``replace_original``) makes the new text, blocks and attachments the whole message.
        """
        if text is not None and len(text) > MAX_TEXT_LENGTH:
            raise SlackError("msg_too_long")
        with self._lock:
            message = self._message(channel, ts)
            before = copy.deepcopy(message)
            if text is not None or replace:
                message.text = text or ""
            if blocks is not None or replace:
                message.blocks = _with_block_ids(blocks, ts)
            if attachments is not None or replace:
                message.attachments = copy.deepcopy(attachments)
            if metadata is not None:
                message.metadata = copy.deepcopy(metadata)
            message.edited = {"user": editor, "ts": self.next_ts()}
            return before, copy.deepcopy(message)

    def delete_message(self, channel: str, ts: str) -> Message:
        """Remove a message; a thread parent with replies stays behind as a tombstone."""
        with self._lock:
            message = self._message(channel, ts)
            messages = self._messages[message.channel]
            deleted = copy.deepcopy(message)
            if message.reply_ts:
                # Slack keeps the thread reachable under a placeholder owned by Slackbot.
                message.subtype = "tombstone"
                message.text = "This message was deleted."
                message.user = "USLACKBOT"
                message.bot_id = message.app_id = message.username = None
                message.bot_profile = message.icons = None
                message.blocks = message.attachments = message.metadata = None
                message.reactions = []
            else:
                del messages[ts]
                parent = messages.get(message.thread_ts or "") if message.is_reply else None
                if parent is not None and ts in parent.reply_ts:
                    parent.reply_ts.remove(ts)
                    still_replying = {messages[r].user for r in parent.reply_ts}
                    parent.reply_users = [u for u in parent.reply_users if u in still_replying]
            return deleted

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            return copy.deepcopy(self._message(channel, ts))

    def _message(self, channel: str, ts: str) -> Message:
        conversation = self._resolve(channel)
        try:
            return self._messages[conversation.id][ts]
        except KeyError:
            raise SlackError("message_not_found") from None

    def history(self, channel: str) -> list[Message]:
        """What the channel shows, oldest first: top-level messages and thread broadcasts."""
        with self._lock:
            conversation = self._resolve(channel)
            shown = [
                m
                for m in self._messages[conversation.id].values()
                if not m.is_reply or m.reply_broadcast
            ]
            return copy.deepcopy(sorted(shown, key=lambda m: parse_ts(m.ts)))

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread's parent followed by its replies, oldest first.

        The ts of a message that has no thread gives just that message, like Slack.
        """
        with self._lock:
            conversation = self._resolve(channel)
            messages = self._messages[conversation.id]
            root = messages.get(ts)
            if root is None:
                raise SlackError("thread_not_found")
            if root.is_reply:
                return [copy.deepcopy(root)]
            return copy.deepcopy([root, *(messages[r] for r in root.reply_ts)])

    # -- reactions ---------------------------------------------------------------------------

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> Message:
        with self._lock:
            message = self._message(channel, ts)
            reaction = next((r for r in message.reactions if r.name == name), None)
            if reaction is None:
                reaction = Reaction(name)
                message.reactions.append(reaction)
            if user in reaction.users:
                raise SlackError("already_reacted")
            reaction.users.append(user)
            return copy.deepcopy(message)

    def remove_reaction(self, channel: str, ts: str, name: str, user: str) -> Message:
        with self._lock:
            message = self._message(channel, ts)
            reaction = next((r for r in message.reactions if r.name == name), None)
            if reaction is None or user not in reaction.users:
                raise SlackError("no_reaction")
            reaction.users.remove(user)
            if not reaction.users:
                message.reactions.remove(reaction)
            return copy.deepcopy(message)

    # -- ephemeral messages ------------------------------------------------------------------

    def post_ephemeral(
        self,
        channel: str,
        *,
        user: str,
        text: str = "",
        blocks: list[JsonDict] | None = None,
        thread_ts: str | None = None,
    ) -> EphemeralMessage:
        with self._lock:
            conversation = self._resolve(channel)
            ts = self.next_ts()
            message = EphemeralMessage(
                conversation.id, user, ts, text, _with_block_ids(blocks, ts), thread_ts
            )
            self._ephemeral.append(message)
            return copy.deepcopy(message)

    def ephemeral_messages(self, user: str | None = None) -> list[EphemeralMessage]:
        with self._lock:
            return copy.deepcopy([m for m in self._ephemeral if user is None or m.user == user])

    def ephemeral_message(self, user: str, ts: str) -> EphemeralMessage:
        with self._lock:
            return copy.deepcopy(self._find_ephemeral(user, ts))

    def replace_ephemeral(
        self, user: str, ts: str, *, text: str = "", blocks: list[JsonDict] | None = None
    ) -> EphemeralMessage:
        """Replace what someone's ephemeral message says (only a response_url can)."""
        with self._lock:
            message = self._find_ephemeral(user, ts)
            message.text = text
            message.blocks = _with_block_ids(blocks, ts)
            return copy.deepcopy(message)

    def delete_ephemeral(self, user: str, ts: str) -> EphemeralMessage:
        with self._lock:
            message = self._find_ephemeral(user, ts)
            self._ephemeral.remove(message)
            return copy.deepcopy(message)

    def _find_ephemeral(self, user: str, ts: str) -> EphemeralMessage:
        for message in self._ephemeral:
            if message.user == user and message.ts == ts:
                return message
        raise SlackError("message_not_found")

    # -- views -------------------------------------------------------------------------------

    def issue_trigger_id(self, user_id: str | None = None) -> str:
        """A trigger_id as an interaction by ``user_id`` carries; views.open accepts it once."""
        return self._views.issue_trigger_id(user_id)

    def use_trigger_id(self, trigger_id: str) -> str | None:
        """Spend a trigger_id; returns the person whose interaction it came from."""
        return self._views.use_trigger_id(trigger_id)

    def open_view(self, definition: JsonDict, *, user_id: str | None = None) -> View:
        return self._views.open(definition, user_id=user_id)

    def push_view(self, view_id: str, definition: JsonDict) -> View:
        return self._views.push(view_id, definition)

    def update_view(
        self,
        definition: JsonDict,
        *,
        view_id: str | None = None,
        external_id: str | None = None,
        hash: str | None = None,
    ) -> View:
        return self._views.update(definition, view_id=view_id, external_id=external_id, hash=hash)

    def publish_home(self, user_id: str, definition: JsonDict, *, hash: str | None = None) -> View:
        """Set someone's Home tab, keeping its view ID across publishes like Slack."""
        self.user(user_id)
        return self._views.publish_home(user_id, definition, hash=hash)

    def close_view(self, view_id: str, *, whole_stack: bool = False) -> list[View]:
        return self._views.close(view_id, whole_stack=whole_stack)

    def view(self, view_id: str) -> View:
        return self._views.get(view_id)

    def home_view(self, user_id: str) -> View | None:
        return self._views.home_view(user_id)

    def last_view(self, user_id: str) -> View | None:
        """The modal on top of someone's screen, if any is open."""
        return self._views.last_modal(user_id)

    # -- streamed messages ---------------------------------------------------------------------

    def start_stream(self, channel: str, *, user: str, thread_ts: str, text: str) -> Message:
        """A new message in ``thread_ts`` that stays open for appends until stopped."""
        if len(text) > MAX_STREAM_CHUNK:
            raise SlackError("msg_too_long")
        with self._lock:
            message = self.post_message(channel, user=user, text=text, thread_ts=thread_ts)
            self._streaming[(message.channel, message.ts)] = self._clock()
            self._streamed.add((message.channel, message.ts))
            return message

    def append_stream(self, channel: str, ts: str, *, user: str, text: str) -> Message:
        """Add ``text`` to the end of a streaming message; returns a copy of it after."""
        if len(text) > MAX_STREAM_CHUNK:
            raise SlackError("msg_too_long")
        with self._lock:
            message = self._streaming_message(channel, ts, user)
            if len(message.text) + len(text) > MAX_TEXT_LENGTH:
                raise SlackError("msg_too_long")
            message.text += text
            return copy.deepcopy(message)

    def stop_stream(
        self,
        channel: str,
        ts: str,
        *,
        user: str,
        text: str = "",
        blocks: list[JsonDict] | None = None,
        metadata: JsonDict | None = None,
    ) -> Message:
        """Close a stream, adding its last text, blocks and metadata; a copy of the message."""
        with self._lock:
            message = self._streaming_message(channel, ts, user)
            message.text += text
            if blocks is not None:
                message.blocks = _with_block_ids(blocks, ts)
            if metadata is not None:
                message.metadata = copy.deepcopy(metadata)
            del self._streaming[(message.channel, message.ts)]
            return copy.deepcopy(message)

    def is_streaming(self, channel: str, ts: str) -> bool:
        with self._lock:
            key = (self._resolve(channel).id, ts)
            started = self._streaming.get(key)
            return started is not None and self._clock() - started < STREAM_LIFETIME

    def was_streamed(self, channel: str, ts: str) -> bool:
        """Whether the message started as a stream (open or stopped since)."""
        with self._lock:
            return (self._resolve(channel).id, ts) in self._streamed

    def _streaming_message(self, channel: str, ts: str, user: str) -> Message:
        message = self._message(channel, ts)
        if message.user != user:
            raise SlackError("cant_update_message")
        if not self.is_streaming(message.channel, ts):
            # Stopped, never a stream, or past Slack's lifetime for a stream.
            self._streaming.pop((message.channel, ts), None)
            raise SlackError("message_not_in_streaming_state")
        return message

    # -- assistant threads -------------------------------------------------------------------

    def set_assistant_status(self, channel: str, thread_ts: str, status: str) -> None:
        with self._lock:
            conversation = self._resolve(channel)
            self._assistant_status[(conversation.id, thread_ts)] = status

    def assistant_status(self, channel: str, thread_ts: str) -> str:
        """The "is thinking…" line under a thread; empty when cleared or never set."""
        with self._lock:
            return self._assistant_status.get((self._resolve(channel).id, thread_ts), "")

    def open_assistant_thread(self, user_id: str) -> Message:
        """The root of a new assistant thread in the person's DM with the app, as Slack
        creates it when they open the app's side panel or start a new chat."""
        with self._lock:
            im = self._resolve(user_id)
            if im.im_user != user_id:
                raise SlackError("channel_not_found")
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._clock()))
            posted = self.post_message(im.id, user=user_id, text=f"Chats from {stamp}")
            root = self._messages[im.id][posted.ts]
            root.subtype = "assistant_app_thread"
            return copy.deepcopy(root)

    def set_suggested_prompts(
        self, channel: str, thread_ts: str, prompts: list[JsonDict], title: str | None
    ) -> None:
        with self._lock:
            key = (self._resolve(channel).id, thread_ts)
            self._assistant_prompts[key] = {"title": title, "prompts": copy.deepcopy(prompts)}

    def suggested_prompts(self, channel: str, thread_ts: str) -> JsonDict | None:
        """The prompts shown in an assistant thread (``{"title", "prompts"}``), if set."""
        with self._lock:
            found = self._assistant_prompts.get((self._resolve(channel).id, thread_ts))
            return copy.deepcopy(found)

    def set_assistant_title(self, channel: str, thread_ts: str, title: str) -> None:
        with self._lock:
            self._assistant_titles[(self._resolve(channel).id, thread_ts)] = title

    def assistant_title(self, channel: str, thread_ts: str) -> str:
        with self._lock:
            return self._assistant_titles.get((self._resolve(channel).id, thread_ts), "")

    # -- saving and restoring ----------------------------------------------------------------

    def export_state(self) -> JsonDict:
        """What happened here, as JSON: conversations with their members, every message with
        its thread and reactions, user groups, and what each assistant thread shows (title,
        suggested prompts, status). Not ephemeral messages or open modals: Slack does not
        keep those across a reload either."""
        with self._lock:
            threads = {*self._assistant_status, *self._assistant_prompts, *self._assistant_titles}
            return {
                "last_ts": self._last_ts,
                "channels": [
                    {**asdict(c), "members": sorted(c.members)} for c in self._channels.values()
                ],
                "messages": [
                    asdict(m) for by_ts in self._messages.values() for m in by_ts.values()
                ],
                "usergroups": [asdict(g) for g in self._usergroups.values()],
                "assistant_threads": [
                    {
                        "channel": channel,
                        "thread_ts": thread_ts,
                        "status": self._assistant_status.get((channel, thread_ts)),
                        "prompts": self._assistant_prompts.get((channel, thread_ts)),
                        "title": self._assistant_titles.get((channel, thread_ts)),
                    }
                    for channel, thread_ts in sorted(threads)
                ],
            }

    def import_state(self, state: JsonDict) -> None:
        """Replace conversations, messages, user groups and assistant threads with those of
        an `export_state()`; people and the app stay as this workspace was made."""
        channels = [Channel(**{**c, "members": set(c["members"])}) for c in state["channels"]]
        messages = [
            Message(**{**m, "reactions": [Reaction(**r) for r in m["reactions"]]})
            for m in state["messages"]
        ]
        with self._lock:
            self._channels = {c.id: c for c in channels}
            self._messages = {c.id: {} for c in channels}
            for message in messages:
                self._messages[message.channel][message.ts] = message
            self._usergroups = {g["id"]: UserGroup(**g) for g in state["usergroups"]}
            self._assistant_status, self._assistant_prompts, self._assistant_titles = {}, {}, {}
            for thread in state["assistant_threads"]:
                key = (thread["channel"], thread["thread_ts"])
                if thread["status"] is not None:
                    self._assistant_status[key] = thread["status"]
                if thread["prompts"] is not None:
                    self._assistant_prompts[key] = thread["prompts"]
                if thread["title"] is not None:
                    self._assistant_titles[key] = thread["title"]
            self._last_ts = max(self._last_ts, int(state["last_ts"]))

    # -- OAuth -------------------------------------------------------------------------------

    def issue_oauth_code(
        self, installer: str | None = None, redirect_uri: str | None = None
    ) -> str:
        """The ``code`` Slack appends to the app's redirect URL after someone approves it."""
        with self._lock:
            code = f"{self.team.id[1:]}.{secrets.token_hex(12)}"
            self._oauth_codes[code] = _OAuthGrant(
                installer or self.roles.get("admin", ""), redirect_uri
            )
            return code

    def exchange_oauth_code(
        self, code: str, *, client_id: str, client_secret: str, redirect_uri: str | None = None
    ) -> JsonDict:
        """The oauth.v2.access install response; each code works once."""
        if client_id != self.app.client_id:
            raise SlackError("invalid_client_id")
        if client_secret != self.app.client_secret:
            raise SlackError("bad_client_secret")
        with self._lock:
            grant = self._oauth_codes.pop(code, None)
        if grant is None:
            raise SlackError("invalid_code")
        if grant.redirect_uri is not None and redirect_uri not in (None, grant.redirect_uri):
            raise SlackError("bad_redirect_uri")
        return {
            "app_id": self.app.app_id,
            "authed_user": {"id": grant.installer},
            "scope": ",".join(self.app.scopes),
            "token_type": "bot",
            "access_token": self.app.bot_token,
            "bot_user_id": self.app.bot_user_id,
            "team": {"id": self.team.id, "name": self.team.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }


def _block_id(ts: str, index: int) -> str:
    # Slack fills in a short block_id for blocks sent without one; deriving it from the
    # message keeps it stable across reads.
    return hashlib.sha1(f"{ts}:{index}".encode(), usedforsecurity=False).hexdigest()[:5]


def _with_block_ids(blocks: list[JsonDict] | None, ts: str) -> list[JsonDict] | None:
    if blocks is None:
        return None
    filled = copy.deepcopy(blocks)
    for index, block in enumerate(filled):
        block.setdefault("block_id", _block_id(ts, index))
    return filled
