"""The digest card: emails held by the flood gate (connectors/email/flood_gate.py), listed
on one message per inbox and hour in the approval channel instead of a card each.

The card is posted for the first held email and updated for each one after it. Like an
approval request it carries metadata naming its digest, and the intent to post is
recorded first, so a job retried after a crash finds the card instead of posting another.
Senders are shown partly masked (`a***@customer.example`), as approvers see addresses
by default.
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg import Connection
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.email.flood_gate import (
    Digest,
    FloodLimits,
    digest_lock,
    load_digest,
    mark_post_intent,
    mark_posted,
)

log = structlog.get_logger(__name__)

DIGEST_EVENT_TYPE = "chatops_email_digest"
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


def digest_message(digest: Digest, limits: FloodLimits) -> tuple[str, list[dict[str, Any]]]:
    """The card's fallback text and blocks."""
    emails = "1 email" if digest.held == 1 else f"{digest.held} emails"
    waiting = f"{emails} to {digest.inbox} {'is' if digest.held == 1 else 'are'} waiting"
    headline = f":envelope: *{waiting} without a draft*"
    why = (
        f"More than {limits.per_sender} came from one sender, or more than {limits.per_inbox} "
        f"to this inbox, within an hour. So this channel isn't buried, they are listed here "
        "instead of one approval card each. Nothing was sent to them; answer any that need "
        "it from the mailbox."
    )
    lines = [
        f"• {masked_address(e.sender)}, “{_subject(e.subject)}”, {e.received_at:%H:%M} UTC"
        for e in digest.latest
    ]
    more = digest.held - len(digest.latest)
    if more > 0:
        lines.append(f"_…and {more} more._")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{headline}\n{why}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "_none yet_"}},
    ]
    return f"{waiting} without a draft", blocks


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
