"""What review posts in Slack: the approval request, its updates, and notes to people.

Posts that must appear once carry message metadata naming what they are, and the intent
to post is recorded first; a retried job looks for the message before posting again.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from core.store import audit
from review import actions, rules
from review.escalation import card_note
from review.messages import PROMPT_REACTIONS, CardContext, Ignored, approval_message
from review.tenant_settings import ReviewSettings

log = structlog.get_logger(__name__)

APPROVAL_EVENT_TYPE = "chatops_approval"
OUTCOME_EVENT_TYPE = "chatops_outcome"
HISTORY_SCAN = 200  # messages searched for an approval request we may have posted
CARD_LOCK_NAMESPACE = 0x63  # high bits of the advisory lock key of an action's card


def thread_of(conn: actions.Conn, action: actions.Row) -> tuple[str, str] | None:
    """The Slack thread the action was asked for in; None for an email conversation."""
    row = conn.execute(
        "SELECT slack_channel_id, slack_thread_ts FROM conversations WHERE id = %s AND tenant_id = %s",
        (action["conversation_id"], action["tenant_id"]),
    ).fetchone()
    if row is None or not row["slack_channel_id"]:
        return None
    return row["slack_channel_id"], row["slack_thread_ts"]


def post_approval_request(
    conn: actions.Conn, client: WebClient, settings: ReviewSettings, action: actions.Row
) -> str | None:
    """The ts of the action's approval message, posting it if needed; None without a
    channel, or while another worker is posting it."""
    if action["approval_ts"]:
        return str(action["approval_ts"])
    channel = settings.approval_channel_id
    if channel is None:
        return None
    # The run that proposed the action posts its card, and the sweep posts those of
    # actions still without one: both, at once, posted two cards (5 ms apart) before each
    # saw the other's. One poster at a time, and the second finds the first's card saved.
    key = (CARD_LOCK_NAMESPACE << 47) | int(action["id"])
    locked = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
    if not (locked and locked["ok"]):
        log.info("approval.card_posted_elsewhere", action_id=action["id"])
        return None
    try:
        current = actions.load(conn, action["tenant_id"], action["id"])
        if current is None:
            return None
        if current["approval_ts"]:
            return str(current["approval_ts"])
        return _post_card(conn, client, channel, current)
    finally:
        if not conn.broken:  # a session the database dropped holds no locks any more
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _post_card(conn: actions.Conn, client: WebClient, channel: str, action: actions.Row) -> str:
    ts = None
    if action["approval_intent_at"] is not None and action["approval_channel_id"] == channel:
        ts = _find_in_channel(client, channel, APPROVAL_EVENT_TYPE, action["id"])
    if ts is None:
        link = _thread_link(conn, client, action)
        actions.set_fields(
            conn,
            action,
            approval_intent_at=actions.NOW,
            approval_channel_id=channel,
            thread_link=link,
        )
        text, blocks = approval_message(action, card_context(conn, action, link))
        try:
            ts = client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata={
                    "event_type": APPROVAL_EVENT_TYPE,
                    "event_payload": {"action_id": action["id"]},
                },
                unfurl_links=False,
            )["ts"]
        except SlackApiError:
            # Slack answered (rate limited, say), so nothing was posted: the retry need
            # not read the channel's history to look for it.
            actions.set_fields(conn, action, approval_intent_at=actions.NULL)
            raise
    actions.set_fields(conn, action, approval_ts=ts, approval_channel_id=channel)
    if action["status"] == "pending":  # not one a rule already approved
        _prompt_reactions(client, channel, str(ts), present=True)
    return str(ts)


def _prompt_reactions(client: WebClient, channel: str, ts: str, *, present: bool) -> None:
    """The bot's own ✅ ✏️ ❌ under a card: there while it waits for a decision, so people
    can click them; gone once decided, so the counts left are people's own."""
    for name in PROMPT_REACTIONS:
        try:
            if present:
                client.reactions_add(channel=channel, timestamp=ts, name=name)
            else:
                client.reactions_remove(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            if exc.response.get("error") not in ("already_reacted", "no_reaction"):
                raise


def card_context(conn: actions.Conn, action: actions.Row, link: str | None) -> CardContext:
    """What the card shows beyond the action's row: the conversation's link, the inbox a
    new email leaves from, decisions that were not counted, the rule that approved it or
    whether a rule may be made of it (review/rules.py), and an escalation."""
    sender = None
    if action["tool"] == "send_email":
        row = conn.execute(
            """SELECT address FROM tenant_inboxes WHERE tenant_id = %s AND kind = 'address'
               ORDER BY id LIMIT 1""",
            (action["tenant_id"],),
        ).fetchone()
        sender = str(row["address"]) if row else None
    ignored = audit.entries_about(
        conn, action["tenant_id"], f"action:{action['id']}", "action.decision_ignored"
    )
    escalated = card_note(action)
    return CardContext(
        thread_link=link,
        sender=sender,
        decided_by=rules.decided_by(conn, action) if action.get("allowed_by_rule") else None,
        offer_rule=rules.offered(conn, action),
        notes=(escalated,) if escalated else (),
        ignored=tuple(
            Ignored(
                r["actor"],
                str((r["details"] or {}).get("verb", "")),
                str((r["details"] or {}).get("reason") or "not allowed to decide"),
            )
            for r in ignored
            # A removed ✅ that was never counted is nothing to show.
            if (r["details"] or {}).get("verb") != "withdraw"
        ),
    )


def refresh_approval_message(conn: actions.Conn, client: WebClient, action: actions.Row) -> None:
    """Show the action's current state in its approval message."""
    if not action["approval_ts"]:
        return
    # Actions posted before the link was kept (or whose lookup failed) look it up again.
    link = action.get("thread_link") or _thread_link(conn, client, action)
    text, blocks = approval_message(action, card_context(conn, action, link))
    client.chat_update(
        channel=action["approval_channel_id"], ts=action["approval_ts"], text=text, blocks=blocks
    )


def show_prompts(client: WebClient, action: actions.Row, *, present: bool) -> None:
    """Add or take away the bot's ✅ ✏️ ❌ under the action's card: called where the action
    leaves 'pending' (approved, rejected, expired) or comes back to it (withdrawn)."""
    if action["approval_ts"] and action["approval_channel_id"]:
        _prompt_reactions(
            client, action["approval_channel_id"], str(action["approval_ts"]), present=present
        )


def tell_requester(
    conn: actions.Conn, client: WebClient, action: actions.Row, outcome: str, text: str
) -> None:
    """Post the outcome in the requesting thread, once per action and outcome. An action
    asked for by email has no Slack thread; its outcome goes in the approval thread."""
    thread = thread_of(conn, action) or (
        (action["approval_channel_id"], action["approval_ts"]) if action["approval_ts"] else None
    )
    if thread is None:
        return
    channel, thread_ts = thread
    marker = f"{action['id']}:{outcome}"
    intent = conn.execute(
        """INSERT INTO action_notices (action_id, outcome, tenant_id) VALUES (%s, %s, %s)
           ON CONFLICT (action_id, outcome) DO NOTHING RETURNING action_id""",
        (action["id"], outcome, action["tenant_id"]),
    ).fetchone()
    if intent is None:
        earlier = conn.execute(
            "SELECT posted_ts FROM action_notices WHERE action_id = %s AND outcome = %s",
            (action["id"], outcome),
        ).fetchone()
        if earlier is not None and earlier["posted_ts"]:
            return
        # An earlier attempt meant to post and died before recording it: look in Slack.
        if _find_in_thread(client, channel, thread_ts, marker):
            return
    try:
        ts = client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            metadata={"event_type": OUTCOME_EVENT_TYPE, "event_payload": {"marker": marker}},
            unfurl_links=False,
        )["ts"]
    except SlackApiError:
        # Slack answered, so nothing was posted: forget the intent, and the retry posts
        # without reading the thread first.
        conn.execute(
            "DELETE FROM action_notices WHERE action_id = %s AND outcome = %s AND posted_ts IS NULL",
            (action["id"], outcome),
        )
        raise
    conn.execute(
        "UPDATE action_notices SET posted_ts = %s WHERE action_id = %s AND outcome = %s",
        (ts, action["id"], outcome),
    )


def _find_in_thread(client: WebClient, channel: str, thread_ts: str, marker: str) -> bool:
    replies = client.conversations_replies(
        channel=channel, ts=thread_ts, include_all_metadata=True, limit=HISTORY_SCAN
    )
    for message in replies.get("messages") or []:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == OUTCOME_EVENT_TYPE
            and (metadata.get("event_payload") or {}).get("marker") == marker
        ):
            return True
    return False


def note_in_approval_thread(client: WebClient, action: actions.Row, text: str) -> None:
    if action["approval_ts"]:
        client.chat_postMessage(
            channel=action["approval_channel_id"], thread_ts=action["approval_ts"], text=text
        )


def tell_privately(client: WebClient, channel: str, user: str, text: str) -> None:
    client.chat_postEphemeral(channel=channel, user=user, text=text)


def _thread_link(conn: actions.Conn, client: WebClient, action: actions.Row) -> str | None:
    thread = thread_of(conn, action)
    if thread is None:
        return None
    channel, thread_ts = thread
    try:
        link: str = client.chat_getPermalink(channel=channel, message_ts=thread_ts)["permalink"]
        return link
    except SlackApiError:
        return None


def _find_in_channel(
    client: WebClient, channel: str, event_type: str, action_id: int
) -> str | None:
    history: Any = client.conversations_history(
        channel=channel, limit=HISTORY_SCAN, include_all_metadata=True
    )
    for message in history.get("messages") or []:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == event_type
            and (metadata.get("event_payload") or {}).get("action_id") == action_id
        ):
            return str(message["ts"])
    return None
