"""Slack's Real-time Search API (`assistant.search.context`) over a sandbox workspace.

The method AI apps call with a bot token to ground answers in Slack messages. Its
request takes `query`, `channel_types` (default `public_channel`), `content_types`
(default `messages`), `include_bots`, `before`/`after` (Unix seconds), `sort` (`score`
or `timestamp`), `sort_dir`, `limit` (at most 20) and `cursor`; its answer is
`results.messages[]` with `author_user_id`, `team_id`, `channel_id`, `message_ts`,
`content`, `is_author_bot` and `permalink`, and `response_metadata.next_cursor`.

What a caller may find: messages (thread replies included) in public channels, and, for
a bot token, only the public channels the bot is a member of; never private channels,
group or direct messages. A bot token must also send the `action_token` Slack put on the
`app_mention` or `message` event that started the work; without one, or with one that is
not Slack's or has expired, Slack answers `invalid_action_token`. Slack ranks natural-language queries semantically; the sandbox
ranks by how many of the query's words a message contains, which is enough to test
what the product does with the results.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sandbox.slack_types import JsonDict, SlackError
from sandbox.slack_workspace import Identity, Message, SlackWorkspace, parse_ts

MAX_LIMIT = 20  # Slack's maximum results per page
# How long an event's action_token is accepted. Slack does not publish its lifetime; an
# agent searches within seconds of the event, so anything that outlives a run will do.
ACTION_TOKEN_LIFETIME = 15 * 60.0  # seconds
WORD = re.compile(r"[\w']+")
# Words a question is made of but no message is found by.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "about",
        "did",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "of",
        "on",
        "or",
        "our",
        "the",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
    ]
)


@dataclass(frozen=True)
class SearchRequest:
    query: str
    channel_types: frozenset[str]
    include_bots: bool
    after: float | None  # Unix seconds
    before: float | None
    by_time: bool  # sort=timestamp, else by score
    ascending: bool
    limit: int
    offset: int  # of the first result on this page


def search_messages(
    workspace: SlackWorkspace, caller: Identity, search: SearchRequest
) -> tuple[list[JsonDict], str]:
    """One page of results and the cursor of the next ("" on the last page)."""
    terms = [w for w in (t.lower() for t in WORD.findall(search.query)) if w not in STOPWORDS]
    if not terms:
        return [], ""
    scored: list[tuple[int, Message]] = []
    for message in _visible(workspace, caller, search.channel_types):
        if message.bot_id is not None and not search.include_bots:
            continue
        seconds = parse_ts(message.ts) / 1_000_000
        if search.after is not None and seconds <= search.after:
            continue
        if search.before is not None and seconds >= search.before:
            continue
        words = {w.lower() for w in WORD.findall(message.text)}
        score = sum(1 for term in terms if term in words)
        if score:
            scored.append((score, message))
    if search.by_time:
        scored.sort(key=lambda s: parse_ts(s[1].ts), reverse=not search.ascending)
    else:
        scored.sort(key=lambda s: (s[0], parse_ts(s[1].ts)), reverse=not search.ascending)
    start = search.offset
    page = scored[start : start + search.limit]
    more = start + search.limit < len(scored)
    cursor = encode_cursor(start + search.limit) if more else ""
    return [_result(workspace, m) for _, m in page], cursor


def _visible(
    workspace: SlackWorkspace, caller: Identity, channel_types: frozenset[str]
) -> list[Message]:
    if "public_channel" not in channel_types:
        return []  # the app's scopes reach public channels only (search:read.public)
    found: list[Message] = []
    for channel in workspace.channels():
        if channel.is_private or channel.is_im:
            continue
        if caller.is_bot and caller.user_id not in channel.members:
            continue
        for message in workspace.history(channel.id):
            if message.reply_ts:
                found.extend(workspace.thread(channel.id, message.ts))
            elif not message.is_reply:
                found.append(message)
    return found


def _result(workspace: SlackWorkspace, message: Message) -> JsonDict:
    link = f"{workspace.team.url}archives/{message.channel}/p{message.ts.replace('.', '')}"
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={message.channel}"
    return {
        "author_user_id": message.user or "",
        "team_id": workspace.team.id,
        "channel_id": message.channel,
        "message_ts": message.ts,
        "content": message.text,
        "is_author_bot": message.bot_id is not None,
        "permalink": link,
    }


def issue_action_token(workspace: SlackWorkspace) -> str:
    """An action_token for an event delivered now, shaped like Slack's ("12345.98765.abcd...").

    Signed rather than remembered, so the event side and the Web API side agree with no
    state shared between them beyond the workspace's app credentials."""
    issued = str(int(workspace.now()))
    nonce = str(secrets.randbelow(10**8)).zfill(8)
    return f"{issued}.{nonce}.{_action_token_mac(workspace, issued, nonce)}"


def check_action_token(workspace: SlackWorkspace, token: str | None) -> None:
    """Raise Slack's error unless `token` is one this workspace issued and still valid."""
    issued, _, rest = (token or "").partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isdigit() and nonce.isdigit() and mac):
        raise SlackError("invalid_action_token")
    if not hmac.compare_digest(mac, _action_token_mac(workspace, issued, nonce)):
        raise SlackError("invalid_action_token")
    if workspace.now() - int(issued) > ACTION_TOKEN_LIFETIME:
        raise SlackError("invalid_action_token")


def _action_token_mac(workspace: SlackWorkspace, issued: str, nonce: str) -> str:
    key = f"action-token:{workspace.app.client_secret}".encode()
    message = f"{workspace.team.id}.{issued}.{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]


def encode_cursor(offset: int) -> str:
    # Opaque to clients, base64 like Slack's ("CURRENT_PAGE:2"); an offset here, so a
    # client may change `limit` between pages.
    return base64.b64encode(f"OFFSET:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor continues from (0 without one)."""
    if not cursor:
        return 0
    try:
        decoded = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    prefix, _, digits = decoded.partition(":")
    if prefix != "OFFSET" or not digits.isdigit():
        raise SlackError("invalid_cursor")
    return int(digits)
