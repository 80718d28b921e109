"""How a pending action reads in the approval channel, in each of its states.

Everything here is read by people: personal data shows as the tenant's approver view
made it (masked like a***@customer.example, or real), never as a model's placeholder; an
email reads as the email it will be; nothing internal (ids, encodings, Python reprs).

The card and its modals are built with slack_sdk's typed Block Kit models and leave here
as JSON (`to_dict()`, which also checks Slack's limits).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

APPROVE, EDIT, REJECT = "white_check_mark", "pencil2", "x"
PROMPT_REACTIONS = (APPROVE, EDIT, REJECT)
BUTTON_APPROVE, BUTTON_EDIT, BUTTON_REJECT = "review_approve", "review_edit", "review_reject"
BUTTON_APPROVE_ALWAYS = "review_approve_always"  # approve, and make a rule (review/rules.py)
BUTTON_REASON = "review_add_reason"  # on the private note to whoever rejected with ❌
EDIT_VIEW = "review_edit_view"
EDIT_BLOCK, EDIT_INPUT = "edited_text", "text"
REJECT_VIEW = "review_reject_view"
REASON_BLOCK, REASON_INPUT = "reject_reason", "text"
NO_CONTENT = "(no content)"
QUOTE_LIMIT = 2_500  # characters of the action's text shown before eliding
EMAIL_TOOLS = ("reply_email", "send_email")
# Arguments that only the product uses: never shown on a card.
INTERNAL_FIELDS = frozenset(
    {"message", "conversation_id", "original_sender", "inbox", "thread_ts", "idempotency_key"}
)

HEADLINES = {
    "pending": ":raised_hand: *Approval needed*",
    "approved": ":hourglass_flowing_sand: *Approved, running…*",
    "executing": ":hourglass_flowing_sand: *Approved, running…*",
    "executed": ":white_check_mark: *Approved and done*",
    "rejected": ":x: *Rejected*",
    "expired": ":alarm_clock: *Expired without a decision*",
    "failed": ":warning: *Approved, but it failed*",
}
VERB_EMOJI = {
    "approve": "✅",
    "approve_always": "✅ always allow",
    "edit": "✏️",
    "reject": "❌",
    "withdraw": "✅",
    "edited": "✏️",
}

# Placeholders the model was shown instead of personal data (<EMAIL_1>), and masks that
# hid a value for good (<EMAIL>), as a person should read them where no value is shown.
HIDDEN = re.compile(r"<(EMAIL|PHONE|CARD|SSN|IBAN|IP|SECRET|PERSON)(?:_(\d+))?>")
HIDDEN_WORDS = {
    "EMAIL": "email address",
    "PHONE": "phone number",
    "CARD": "card number",
    "SSN": "social security number",
    "IBAN": "bank account",
    "IP": "IP address",
    "SECRET": "secret",
    "PERSON": "name",
}
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{6,}")
ANGLED = re.compile(r"<([^<>]*)>")


def readable(text: str) -> str:
    """`text` with any placeholder left in it written as what it stands for, hidden:
    "(email address 1, hidden)". Slack would show <EMAIL_1> as a dead link."""

    def word(match: re.Match[str]) -> str:
        kind, number = HIDDEN_WORDS[match.group(1)], match.group(2)
        return f"({kind} {number}, hidden)" if number else f"({kind}, hidden)"

    return HIDDEN.sub(word, text)


def mrkdwn_safe(text: str) -> str:
    """Text from data (an address, a subject) for mrkdwn: Slack's own markup (<#C…>,
    <@U…>, <https://…|…>) stays; any other <…> shows as typed instead of vanishing."""

    def keep_or_escape(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner[:1] in ("#", "@", "!") or inner.startswith(("http://", "https://", "mailto:")):
            return match.group()
        return f"&lt;{inner}&gt;"

    return ANGLED.sub(keep_or_escape, readable(text))


def bold(text: str) -> str:
    """`text` in bold, unless it holds an asterisk (a masked a***@x.example): Slack would
    then show the marks literally around it instead of bold text."""
    return text if "*" in text else f"*{text}*"


def person(who: str) -> str:
    """Who asked: a Slack user as a mention, anyone else (an email sender) as written."""
    return f"<@{who}>" if SLACK_USER.fullmatch(who) else mrkdwn_safe(who)


def shown(action: Mapping[str, Any], key: str) -> Any:
    """The action's summary, payload, reason or requester as the approver view shows it."""
    view = action.get("shown") or {}
    return view.get(key, action[key])


def people_summary(action: Mapping[str, Any]) -> str:
    """The action's one-line summary for any person (cards, threads, `/agent approvals`)."""
    return mrkdwn_safe(str(shown(action, "summary")))


@dataclass(frozen=True)
class Ignored:
    """A decision that was not counted: who, what and why (for the card)."""

    user: str
    verb: str
    reason: str


@dataclass(frozen=True)
class CardContext:
    """What the card shows beyond the action's own row."""

    thread_link: str | None = None
    sender: str | None = None  # the inbox a new email (send_email) leaves from
    ignored: Sequence[Ignored] = field(default_factory=tuple)
    # Who approved it, as people read it, when not a person's mention (a rule).
    decided_by: str | None = None
    offer_rule: bool = False  # "Approve & always allow" (review/rules.py)
    notes: Sequence[str] = field(default_factory=tuple)  # an escalation, for instance


def approval_message(
    action: dict[str, Any], context: CardContext | str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the Block Kit blocks of an action's approval message."""
    if not isinstance(context, CardContext):
        context = CardContext(thread_link=context)
    status = action["status"]
    headline = HEADLINES[status]
    if status == "failed" and stopped_as_stale(action):
        headline = STOPPED_HEADLINE
    if status == "pending" and action.get("edited_by"):
        headline = ":pencil2: *Edited: needs a final ✅*"
    elif status == "pending" and action.get("edit_requested_by"):
        headline = ":pencil2: *Edit requested: reply in this thread with the new text*"
    summary = people_summary(action)
    payload = shown(action, "payload")
    reason = mrkdwn_safe(str(shown(action, "reason")))
    text = f"{headline}: {summary}"
    link = context.thread_link
    lines = [
        f"{headline}\n{bold(summary)}",
        f"*Requested by* {person(str(shown(action, 'requested_by')))}"
        + (f" · <{link}|conversation>" if link else ""),
        f"*Why:* {reason}",
    ]
    blocks: list[Block] = [_section("\n".join(lines))]
    blocks.extend(effect_blocks(action.get("preview")))
    if action["tool"] in EMAIL_TOOLS:
        blocks.extend(_email_blocks(action["tool"], payload, context.sender))
    else:
        # What the effect above already says (a deal's id, the stage's internal name) is
        # not repeated; only what it does not (a note's text).
        covered = frozenset(_readable_preview(action).get("covers") or ())
        quoted = _quote({k: v for k, v in payload.items() if k not in covered})
        if not (covered and quoted == NO_CONTENT):
            blocks.append(_section(quoted))
    if action.get("edited_by"):
        original = shown(action, "original_payload")
        version = f" (version {action['version']})" if action.get("version", 1) > 1 else ""
        blocks.append(
            _context(
                f"Edited by <@{action['edited_by']}>{version}. Original: {_one_line(original)}"
            )
        )
    if action.get("citations"):
        blocks.append(
            _context("Sources: " + ", ".join(mrkdwn_safe(str(c)) for c in action["citations"]))
        )
    if action.get("flags"):
        blocks.append(
            _context(":warning: Flagged: " + ", ".join(mrkdwn_safe(f) for f in action["flags"]))
        )
    if status == "pending" and context.ignored:
        blocks.append(_context(_not_counted(context.ignored)))
    blocks.extend(_context(note) for note in context.notes)
    blocks.append(_context(_outcome(action, context.decided_by)))
    if status == "pending":
        # The buttons name the version the card shows: a click on an older copy of the
        # card (before an edit) is refused rather than approving what its clicker never saw.
        value = button_value(action)
        approve = ButtonElement(
            text=PlainTextObject(text="Approve"),
            action_id=BUTTON_APPROVE,
            value=value,
            style="primary",
        )
        always = ButtonElement(
            text=PlainTextObject(text="Approve & always allow"),
            action_id=BUTTON_APPROVE_ALWAYS,
            value=value,
        )
        edit = ButtonElement(text=PlainTextObject(text="Edit"), action_id=BUTTON_EDIT, value=value)
        reject = ButtonElement(
            text=PlainTextObject(text="Reject"),
            action_id=BUTTON_REJECT,
            value=value,
            style="danger",
        )
        buttons = [approve, always, edit, reject] if context.offer_rule else [approve, edit, reject]
        blocks.append(ActionsBlock(block_id=f"review_{action['id']}", elements=buttons))
    return text, [block.to_dict() for block in blocks]


STOPPED_HEADLINE = ":octagonal_sign: *Approved, but stopped: it changed since the card was posted*"


def effect_blocks(preview: Mapping[str, Any] | None) -> list[Block]:
    """What the action will change, as the system said just before the card was posted
    (review/effects.py): the record and each change before → after, or why it could not
    be read (which blocks nothing)."""
    if not preview:
        return []
    if preview.get("error"):
        error = mrkdwn_safe(str(preview["error"]))
        return [_context(f":warning: {error[:1].upper()}{error[1:]}")]
    lines = [bold(mrkdwn_safe(str(preview.get("subject") or "")))]
    lines += [mrkdwn_safe(str(change)) for change in preview.get("changes") or ()]
    return [_section("\n".join(line for line in lines if line))]


def _readable_preview(action: Mapping[str, Any]) -> Mapping[str, Any]:
    preview = action.get("preview") or {}
    return {} if preview.get("error") else preview


def stopped_as_stale(action: Mapping[str, Any]) -> bool:
    """Whether execution stopped it because what its card showed had changed."""
    return bool((action.get("preview") or {}).get("stale"))


def button_value(action: Mapping[str, Any]) -> str:
    """What a card's decision buttons carry: the action, the version shown and the start
    of its hash (never shown to people)."""
    return f"{action['id']}:{action.get('version') or 1}:{str(action.get('shown_hash') or '')[:16]}"


@dataclass(frozen=True)
class Clicked:
    action_id: int
    version: int | None = None  # None: a card posted before versions (the latest applies)
    hash_prefix: str = ""


def clicked_value(value: str) -> Clicked:
    """A decision button's value, as `button_value` wrote it (or a bare action id)."""
    parts = value.split(":")
    if len(parts) == 3 and parts[1].isdigit():
        return Clicked(int(parts[0]), int(parts[1]), parts[2])
    return Clicked(int(parts[0]))


def edit_view(action: dict[str, Any]) -> dict[str, Any]:
    """The modal an approver edits the action's text in: the text as the approver view
    shows it (review/decisions.py maps shown values back to the stored placeholders)."""
    is_email = action["tool"] in EMAIL_TOOLS
    payload = shown(action, "payload")
    return View(
        type="modal",
        callback_id=EDIT_VIEW,
        # The version being edited: saving an edit of a version someone else edited
        # meanwhile is refused (review/decisions.py).
        private_metadata=json.dumps(
            {"action_id": action["id"], "version": action.get("version") or 1}
        ),
        title=PlainTextObject(text="Edit the email" if is_email else "Edit the action"),
        submit=PlainTextObject(text="Save edit"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            _context(people_summary(action)),
            InputBlock(
                block_id=EDIT_BLOCK,
                label=PlainTextObject(text="The email's text" if is_email else "The text"),
                element=PlainTextInputElement(
                    action_id=EDIT_INPUT,
                    multiline=True,
                    initial_value=readable(str(payload.get("text", "")))[:3000],
                ),
            ),
        ],
    ).to_dict()


def reject_view(action: dict[str, Any]) -> dict[str, Any]:
    """The modal Reject opens: an optional reason, passed on to whoever asked."""
    is_email = action["tool"] in EMAIL_TOOLS
    return View(
        type="modal",
        callback_id=REJECT_VIEW,
        private_metadata=json.dumps({"action_id": action["id"]}),
        title=PlainTextObject(text="Reject the email" if is_email else "Reject the action"),
        submit=PlainTextObject(text="Reject"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=bold(people_summary(action)[:2800]))),
            InputBlock(
                block_id=REASON_BLOCK,
                optional=True,
                label=PlainTextObject(text="Why? (optional, shown to whoever asked)"),
                element=PlainTextInputElement(
                    action_id=REASON_INPUT, multiline=True, max_length=1_000
                ),
            ),
        ],
    ).to_dict()


def rejected_note(action: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The private note to whoever rejected with ❌ (no modal can open from a reaction)."""
    text = f"You rejected: {people_summary(action)}. Want to say why?"
    add_reason = ButtonElement(
        text=PlainTextObject(text="Add a reason"), action_id=BUTTON_REASON, value=str(action["id"])
    )
    return text, [
        SectionBlock(text=MarkdownTextObject(text=text[:2900]), accessory=add_reason).to_dict()
    ]


def email_of(tool: str, payload: Mapping[str, Any], sender: str | None) -> dict[str, Any]:
    """From, To, Cc, Subject and body of an email action, as the recipient reads them."""
    if tool == "send_email":
        return {
            "from": sender or "",
            "to": [str(a) for a in payload.get("to") or ()],
            "cc": [],
            "subject": str(payload.get("subject") or ""),
            "body": str(payload.get("text") or ""),
        }
    headers: dict[str, Any] = {"from": "", "to": [], "cc": [], "subject": ""}
    shown_headers = payload.get("headers")
    if isinstance(shown_headers, Mapping):
        # The approver view of a reply (bot/agent/answer_email.py): its headers as the
        # tenant's policy lets approvers see them, not the message that will be sent.
        return {
            "from": str(shown_headers.get("from") or ""),
            "to": [str(a) for a in shown_headers.get("to") or ()],
            "cc": [str(a) for a in shown_headers.get("cc") or ()],
            "subject": str(shown_headers.get("subject") or ""),
            "body": str(payload.get("text") or ""),
        }
    # A sealed message (connectors/email/tools.py) is opened only to send it.
    message = None if payload.get("sealed") else _stored_message(str(payload.get("message") or ""))
    if message is not None:
        headers = {
            "from": str(message.get("From", "")),
            "to": [str(a) for a in getattr(message.get("To"), "addresses", ())],
            "cc": [str(a) for a in getattr(message.get("Cc"), "addresses", ())],
            "subject": str(message.get("Subject", "")),
        }
    return {**headers, "body": str(payload.get("text") or "")}


def _stored_message(text: str) -> EmailMessage | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    message = BytesParser(policy=email_policy.default).parsebytes(raw)
    return message if isinstance(message, EmailMessage) else None


def _email_blocks(tool: str, payload: Mapping[str, Any], sender: str | None) -> list[Block]:
    email = email_of(tool, payload, sender)
    header = [
        ("From", email["from"]),
        ("To", ", ".join(email["to"])),
        ("Cc", ", ".join(email["cc"])),
        ("Subject", email["subject"]),
    ]
    lines = [f"*{name}:* {mrkdwn_safe(value)}" for name, value in header if value]
    body = readable(email["body"]).strip() or "(no text)"
    if len(body) > QUOTE_LIMIT:
        body = body[:QUOTE_LIMIT] + "…"
    # The body as plain text: exactly what the recipient reads, no Slack formatting.
    return [
        DividerBlock(),
        _section("\n".join(lines)),
        SectionBlock(text=PlainTextObject(text=body, emoji=False)),
        DividerBlock(),
    ]


def _not_counted(ignored: Sequence[Ignored]) -> str:
    seen: dict[tuple[str, str], Ignored] = {}
    for item in ignored:
        seen.setdefault((item.user, item.verb), item)
    parts = [
        f"{VERB_EMOJI.get(i.verb, i.verb)} from <@{i.user}> ({_why_not(i.reason)})"
        for i in list(seen.values())[-5:]
    ]
    return ":no_entry_sign: Not counted: " + "; ".join(parts)


# The refusals of review/authority.py are written to the person refused ("you are not
# ..."); on the card everyone reads, they are said about that person, briefly.
WHY_NOT = (
    ("not one of this workspace's approvers", "not an approver"),
    ("not a member of this workspace's organisation", "outside this workspace's organisation"),
    ("you asked for this action", "asked for it; someone else must approve"),
    ("didn't answer when i checked", "could not be checked just now"),
)


def _why_not(reason: str) -> str:
    lowered = reason.lower()
    return next((short for known, short in WHY_NOT if known in lowered), "not allowed to decide")


DONE = {"reply_email": "the reply was sent", "send_email": "the email was sent"}


def _outcome(action: dict[str, Any], decided_by: str | None = None) -> str:
    """Who decided and what happened, once decided; how to decide, until then."""
    status = action["status"]
    who = decided_by or (f"<@{action['decided_by']}>" if action.get("decided_by") else "nobody")
    if status == "pending":
        return "React ✅ to approve, ✏️ to edit, ❌ to reject (or use the buttons)."
    if status in ("approved", "executing"):
        return f"Approved by {who}; running it now."
    if status == "executed":
        edited = " as edited" if action.get("edited_by") else ""
        return f"Approved by {who} and done{edited}: {DONE.get(action['tool'], 'it ran once')}."
    if status == "rejected":
        reason = action.get("reject_reason")
        return f"Rejected by {who}; it was not done. " + (
            f"Reason: {mrkdwn_safe(reason)}" if reason else "No reason given."
        )
    if status == "expired":
        return "Nobody decided before it expired, so it was not done."
    error = mrkdwn_safe(str(action.get("error") or "unknown error"))
    if stopped_as_stale(action):
        return f"Approved by {who}, but it was stopped before running: {error}"
    return f"Approved by {who}, but it failed: {error}"


def _quote(payload: dict[str, Any]) -> str:
    text = readable(str(payload.get("text") or payload.get("body") or ""))
    others = {
        k: v for k, v in payload.items() if k not in ("text", "body") and k not in INTERNAL_FIELDS
    }
    quoted = "\n".join("> " + line for line in text[:QUOTE_LIMIT].splitlines()) if text else ""
    details = "\n".join(f"*{_label(k)}:* {_value(v)}" for k, v in others.items())
    return "\n".join(part for part in (details, quoted) if part) or NO_CONTENT


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _value(value: Any) -> str:
    """An argument's value as a person reads it: channels as links, lists as lists."""
    if isinstance(value, str):
        return f"<#{value}>" if SLACK_CHANNEL.fullmatch(value) else mrkdwn_safe(value)
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{_label(str(k))}: {_value(v)}" for k, v in value.items()) or "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _one_line(payload: dict[str, Any]) -> str:
    text = readable(str(payload.get("text") or _quote(payload))).replace("\n", " ")
    return (text[:200] + "…") if len(text) > 200 else text


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text[:2900]))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text[:2900])])
