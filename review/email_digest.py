"""The digest card: emails held by the flood gate (connectors/email/flood_gate.py), listed
on one message per inbox and hour in the approval channel instead of a card each.

The card is posted for the first held email and updated for each one after it. Like an
approval request it carries metadata naming its digest, and the intent to post is
recorded first, so a job retried after a crash finds the card instead of posting another.
Senders are shown partly masked (`a***@customer.example`), as approvers see addresses
by default.

The card's button releases the emails waiting on it: each then gets its draft and its own
approval card, as if it had never been held. Releasing is a decision like an approval:
the same people may make it (review/authority.py), and the click goes through the
review queue like an approval's (kind `digest_release`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from psycopg import Connection
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from connectors.email.flood_gate import (
    Digest,
    FloodLimits,
    digest_lock,
    load_digest,
    mark_post_intent,
    mark_posted,
    release_held,
)
from review import tenant_settings
from review.authority import may_approve
from review.slack_posts import tell_privately

log = structlog.get_logger(__name__)

DIGEST_EVENT_TYPE = "chatops_email_digest"
BUTTON_RELEASE = "email_digest_release"  # its value is the digest's id
RELEASE_KIND = "digest_release"  # inbound_requests.kind of a click on it
HISTORY_SCAN = 200  # messages searched for a digest card we may have posted
SUBJECT_CHARS = 80


def show_digest(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    *,
    tenant_id: int,
    digest_id: int,
    channel: str | None,
    limits: FloodLimits,
) -> None:
    """Post the digest's card, or bring it up to date. A failed update is logged, not
    raised: the held email is recorded either way, and the next one updates the card."""
    if channel is None:
        log.warning("email.digest_without_channel", digest_id=digest_id)
        return
    with digest_lock(conn, digest_id):
        digest = load_digest(conn, tenant_id, digest_id)
        if digest is None:
            return
        text, blocks = digest_message(digest, limits)
        try:
            if digest.approval_ts and digest.approval_channel_id:
                client.chat_update(
                    channel=digest.approval_channel_id,
                    ts=digest.approval_ts,
                    text=text,
                    blocks=blocks,
                )
                return
            ts = None
            if digest.post_intent_at is not None and digest.approval_channel_id == channel:
                ts = _find_card(client, channel, digest.id)
            if ts is None:
                mark_post_intent(conn, digest, channel)
                ts = client.chat_postMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    metadata={
                        "event_type": DIGEST_EVENT_TYPE,
                        "event_payload": {"digest_id": digest.id},
                    },
                    unfurl_links=False,
                )["ts"]
            else:
                client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            mark_posted(conn, digest, channel, str(ts))
        except SlackApiError as exc:
            log.warning(
                "email.digest_not_updated",
                digest_id=digest.id,
                error=exc.response.get("error"),
            )


def release_digest(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    *,
    tenant_id: int,
    digest_id: int,
    user: str,
    user_team: str | None,
    channel: str | None,
    limits: FloodLimits,
    enqueue_request: Callable[[int], None],
) -> int:
    """An approver clicked the card's button: if they may decide on approvals, the
    waiting emails are released and queued to be drafted, one card each, and the card
    says who released them. Returns how many were released."""
    settings = tenant_settings.load(conn, tenant_id)
    verdict = may_approve(conn, client, settings, user, "", user_team=user_team)
    if not verdict.allowed:
        log.info("email.digest_release_refused", digest_id=digest_id)
        if channel:
            tell_privately(
                client, channel, user, f"The emails were not released: {verdict.reason}."
            )
        return 0
    released = release_held(conn, tenant_id, digest_id, user)
    for request_id in released:
        enqueue_request(request_id)
    log.info("email.digest_released", digest_id=digest_id, emails=len(released))
    show_digest(
        conn,
        client,
        tenant_id=tenant_id,
        digest_id=digest_id,
        channel=settings.approval_channel_id,
        limits=limits,
    )
    return len(released)


def digest_message(digest: Digest, limits: FloodLimits) -> tuple[str, list[dict[str, Any]]]:
    """The card's fallback text and blocks."""
    if digest.held == 0 and digest.released:
        return _released_message(digest)
    emails = "1 email" if digest.held == 1 else f"{digest.held} emails"
    waiting = f"{emails} to {digest.inbox} {'is' if digest.held == 1 else 'are'} waiting"
    headline = f":envelope: *{waiting} without a draft*"
    why = (
        f"More than {limits.per_sender} came from one sender, or more than {limits.per_inbox} "
        f"to this inbox, within an hour. So this channel isn't buried, they are listed here "
        "instead of one approval card each. Nothing was sent to them: answer them from the "
        "mailbox, or use the button to draft a reply to each, with its own approval card."
    )
    lines = [
        f"• {masked_address(e.sender)}, “{_subject(e.subject)}”, {e.received_at:%H:%M} UTC"
        for e in digest.latest
    ]
    more = digest.held - len(digest.latest)
    if more > 0:
        lines.append(f"_…and {more} more._")
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"{headline}\n{why}")),
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines) or "_none yet_")),
    ]
    if digest.released:
        blocks.append(_released_context(digest))
    if digest.held:
        blocks.append(_release_actions(digest))
    return f"{waiting} without a draft", [block.to_dict() for block in blocks]


def _release_actions(digest: Digest) -> ActionsBlock:
    label = "Draft a reply" if digest.held == 1 else f"Draft a reply to each ({digest.held})"
    what_happens = (
        f"Each of the {digest.held} emails gets a drafted reply and its own approval card in "
        "this channel. Nothing is sent until someone approves it."
        if digest.held > 1
        else "The email gets a drafted reply and its own approval card in this channel. "
        "Nothing is sent until someone approves it."
    )
    confirm = ConfirmObject(
        title=PlainTextObject(text="Draft these replies?"),
        text=MarkdownTextObject(text=what_happens),
        confirm=PlainTextObject(text="Draft replies"),
        deny=PlainTextObject(text="Cancel"),
    )
    release = ButtonElement(
        action_id=BUTTON_RELEASE,
        text=PlainTextObject(text=label),
        value=str(digest.id),
        confirm=confirm,
    )
    return ActionsBlock(elements=[release])


def _released_context(digest: Digest) -> ContextBlock:
    emails = "1 email" if digest.released == 1 else f"{digest.released} emails"
    when = f" at {digest.released_at:%H:%M} UTC" if digest.released_at else ""
    who = f"<@{digest.released_by}>" if digest.released_by else "An approver"
    released = f"{who} released {emails}{when}: each has its own approval card."
    return ContextBlock(elements=[MarkdownTextObject(text=released)])


def _released_message(digest: Digest) -> tuple[str, list[dict[str, Any]]]:
    emails = "1 email" if digest.released == 1 else f"{digest.released} emails"
    text = f"{emails} to {digest.inbox} released for drafting"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f":envelope: *{text}*")),
        _released_context(digest),
    ]
    return text, [block.to_dict() for block in blocks]


def masked_address(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return "an unknown sender"
    return f"{local[:1]}***@{domain}"


def _subject(subject: str) -> str:
    subject = " ".join(subject.split()) or "(no subject)"
    return subject if len(subject) <= SUBJECT_CHARS else subject[: SUBJECT_CHARS - 1] + "…"


def _find_card(client: WebClient, channel: str, digest_id: int) -> str | None:
    history: Any = client.conversations_history(
        channel=channel, limit=HISTORY_SCAN, include_all_metadata=True
    )
    for message in history.get("messages") or []:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == DIGEST_EVENT_TYPE
            and (metadata.get("event_payload") or {}).get("digest_id") == digest_id
        ):
            return str(message["ts"])
    return None
