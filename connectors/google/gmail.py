"""The Gmail reads the tools make: search threads, read one as plain text.

A thread is read message by message in Gmail's `raw` form and decoded by the same
parser as inbound mail (connectors/email/parse.py), so HTML-only mail, odd charsets and
quoted history are handled once, the same way. Attachments are listed by name, type and
size, never inlined: a thread's PDF would cost the model more than the thread.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from connectors.email.gmail_send import gmail_service
from connectors.email.parse import Mailbox, ParsedEmail, parse_email
from connectors.google.client import GoogleClient, GoogleService
from connectors.rest import paginate

ME = "me"  # the mailbox of the account that granted the credential
PAGE_SIZE = 50  # threads per threads.list page
MAX_MESSAGES = 20  # newest messages of a thread read
MAX_TEXT_CHARS = 6_000  # of each message's new text given to the model
SUMMARY_HEADERS = ["Subject", "From", "Date"]


def gmail_read_service(api_url: str | None, http: Any) -> GoogleService:
    return GoogleService("gmail", "Gmail", gmail_service(http=http, api_url=api_url))


def search_threads(api: GoogleClient, query: str, limit: int) -> list[dict[str, Any]]:
    def page(token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        found = api.execute(
            api.resource.users()
            .threads()
            .list(userId=ME, q=query, maxResults=min(limit, PAGE_SIZE), pageToken=token)
        )
        return found.get("threads") or [], found.get("nextPageToken")

    return [_thread_summary(api, thread) for thread in paginate(page, limit=limit)]


def read_thread(api: GoogleClient, thread_id: str) -> dict[str, Any]:
    thread = api.execute(
        api.resource.users().threads().get(userId=ME, id=thread_id, format="minimal"),
        not_found="no such thread",
    )
    ids = [m["id"] for m in thread.get("messages") or []]
    messages = [_message(api, message_id) for message_id in ids[-MAX_MESSAGES:]]
    read: dict[str, Any] = {"thread_id": thread_id, "messages": messages}
    if len(ids) > MAX_MESSAGES:
        read["earlier_messages_not_shown"] = len(ids) - MAX_MESSAGES
    return read


def _thread_summary(api: GoogleClient, thread: dict[str, Any]) -> dict[str, Any]:
    found = api.execute(
        api.resource.users()
        .threads()
        .get(userId=ME, id=thread["id"], format="metadata", metadataHeaders=SUMMARY_HEADERS),
        not_found="no such thread",
    )
    messages = found.get("messages") or []
    first = _headers(messages[0]) if messages else {}
    last = _headers(messages[-1]) if messages else {}
    return {
        "thread_id": thread["id"],
        "subject": first.get("subject", ""),
        "from": first.get("from", ""),
        "last_message_at": last.get("date", ""),
        "messages": len(messages),
        # Gmail escapes the snippet for HTML; the model reads plain text.
        "snippet": html.unescape(str(thread.get("snippet") or "")),
    }


def _message(api: GoogleClient, message_id: str) -> dict[str, Any]:
    found = api.execute(
        api.resource.users().messages().get(userId=ME, id=message_id, format="raw"),
        not_found="no such message",
    )
    encoded = str(found.get("raw", ""))
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    return _shown(message_id, parse_email(raw))


def _shown(message_id: str, parsed: ParsedEmail) -> dict[str, Any]:
    text = parsed.text
    shown: dict[str, Any] = {
        "message_id": message_id,
        "from": _address(parsed.sender),
        "to": [_address(m) for m in parsed.to],
        "date": parsed.date,
        "subject": parsed.subject,
        "text": text[:MAX_TEXT_CHARS],
    }
    if parsed.cc:
        shown["cc"] = [_address(m) for m in parsed.cc]
    if len(text) > MAX_TEXT_CHARS:
        shown["text_truncated"] = True
    if parsed.attachments:
        shown["attachments"] = [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in parsed.attachments
        ]
    return shown


def _address(mailbox: Mailbox | None) -> str:
    if mailbox is None:
        return ""
    return f"{mailbox.name} <{mailbox.address}>" if mailbox.name else mailbox.address


def _headers(message: dict[str, Any]) -> dict[str, str]:
    headers = (message.get("payload") or {}).get("headers") or []
    return {str(h.get("name", "")).lower(): str(h.get("value", "")) for h in headers}
