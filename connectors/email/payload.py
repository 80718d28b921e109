"""The JSON an email request carries in inbound_requests.payload, for the worker.

Everything the agent needs to answer is here, so the worker never re-parses raw bytes:
who wrote, to which inbox, the new text (quoted history and signature apart), the
attachments' text, and the threading ids a reply must carry. `conversation_id` is added
by the store, in the same statement that writes the row.
"""

from __future__ import annotations

from typing import Any

from connectors.email.loops import Verdict
from connectors.email.parse import Mailbox, ParsedEmail

PAYLOAD_VERSION = 1
# Attachment text beyond this total is dropped from the payload (the raw bytes keep it).
MAX_ATTACHMENT_TEXT_TOTAL = 60_000


def request_payload(
    mail: ParsedEmail,
    *,
    inbox: str,
    envelope_from: str,
    envelope_to: list[str],
    verdict: Verdict | None,
) -> dict[str, Any]:
    payload = {
        "version": PAYLOAD_VERSION,
        "channel": "email",
        "inbox": inbox,
        "message_id": mail.message_id,
        "has_message_id": mail.has_message_id,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references),
        "subject": mail.subject,
        "from": _mailbox(mail.sender),
        "reply_to": [_mailbox(m) for m in mail.reply_to],
        "to": [_mailbox(m) for m in mail.to],
        "cc": [_mailbox(m) for m in mail.cc],
        "date": mail.date,
        "envelope": {"mail_from": envelope_from, "rcpt_to": envelope_to},
        "text": mail.text,
        "quoted": mail.quoted,
        "signature": mail.signature,
        "body_source": mail.body_source,
        "attachments": _attachments(mail),
        "no_reply": {"kind": verdict.kind, "reason": verdict.reason} if verdict else None,
        "defects": list(mail.defects),
        "parse_error": mail.error,
    }
    cleaned: dict[str, Any] = storable(payload)
    return cleaned


def storable(value: Any) -> Any:
    """`value` with every string made storable in Postgres text and jsonb.

    Mail decoded leniently can hold NUL characters and lone surrogates (undecodable
    header bytes); Postgres refuses both, and a refusal would turn into a 4xx that the
    sender retries forever.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):  # keys are ours, plain ASCII
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def clean_text(text: str) -> str:
    if "\x00" not in text and (text.isascii() or _encodable(text)):
        return text
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text.replace("\x00", "")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _mailbox(mailbox: Mailbox | None) -> dict[str, str] | None:
    return {"name": mailbox.name, "address": mailbox.address} if mailbox else None


def _attachments(mail: ParsedEmail) -> list[dict[str, Any]]:
    budget = MAX_ATTACHMENT_TEXT_TOTAL
    listed = []
    for attachment in mail.attachments:
        text = attachment.text
        truncated = attachment.text_truncated
        if text is not None:
            if len(text) > budget:
                text, truncated = text[:budget], True
            budget -= len(text)
        listed.append(
            {
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "text": text,
                "text_truncated": truncated,
                "note": attachment.note,
            }
        )
    return listed
