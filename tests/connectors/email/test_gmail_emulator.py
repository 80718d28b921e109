"""The Gmail emulator answers the real google-api-python-client with Gmail's shapes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httplib2
import pytest
from googleapiclient.errors import HttpError

from connectors.email.gmail_send import gmail_service
from sandbox.gmail_api import GmailEmulator

ME = "agent@sandbox.example"


@pytest.fixture
def gmail() -> Iterator[GmailEmulator]:
    with GmailEmulator(address=ME) as emulator:
        yield emulator


@pytest.fixture
def client(gmail: GmailEmulator) -> Any:
    return gmail_service(http=httplib2.Http(timeout=10), api_url=gmail.api_url)


def message(subject: str, body: str, message_id: str, **headers: str) -> bytes:
    built = EmailMessage()
    built["From"] = "Alice <alice@customer.example>"
    built["To"] = ME
    built["Subject"] = subject
    built["Message-ID"] = message_id
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(body)
    return built.as_bytes()


def test_received_replies_share_a_thread_and_threads_get_returns_them(
    gmail: GmailEmulator, client: Any
) -> None:
    """A reply delivered with In-Reply-To joins its thread; threads.get lists both in
    order with full payloads, threads.list finds the thread by its words."""
    first = gmail.deliver(message("Invoice", "Where is invoice 7?", "<a1@customer.example>"))
    gmail.deliver(
        message(
            "Re: Invoice",
            "Still waiting.",
            "<a2@customer.example>",
            In_Reply_To="<a1@customer.example>",
        )
    )
    gmail.deliver(message("Other", "Unrelated.", "<b1@customer.example>"))
    thread = client.users().threads().get(userId="me", id=first.thread_id).execute()
    assert [m["snippet"] for m in thread["messages"]] == ["Where is invoice 7?", "Still waiting."]
    payload = thread["messages"][0]["payload"]
    assert payload["mimeType"] == "text/plain"
    assert {"name": "Subject", "value": "Invoice"} in payload["headers"]
    assert (
        base64.urlsafe_b64decode(payload["body"]["data"]).decode().strip() == "Where is invoice 7?"
    )
    found = client.users().threads().list(userId="me", q="waiting").execute()
    assert [t["id"] for t in found["threads"]] == [first.thread_id]


def test_messages_list_pages_and_formats(gmail: GmailEmulator, client: Any) -> None:
    """messages.list pages with nextPageToken (the client's list_next follows it), newest
    first; get honours format=raw and format=metadata with metadataHeaders."""
    for index in range(5):
        gmail.deliver(message(f"n{index}", "hello", f"<n{index}@customer.example>"))
    request = client.users().messages().list(userId="me", maxResults=2)
    seen: list[str] = []
    while request is not None:
        page = request.execute()
        seen.extend(m["id"] for m in page.get("messages", []))
        request = client.users().messages().list_next(request, page)
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    raw = client.users().messages().get(userId="me", id=seen[0], format="raw").execute()
    assert b"Subject: n4" in base64.urlsafe_b64decode(raw["raw"])
    meta = (
        client.users()
        .messages()
        .get(userId="me", id=seen[0], format="metadata", metadataHeaders=["Message-ID"])
        .execute()
    )
    assert meta["payload"]["headers"] == [{"name": "Message-ID", "value": "<n4@customer.example>"}]


def test_attachments_are_fetched_by_id(gmail: GmailEmulator, client: Any) -> None:
    """A part with a filename carries an attachmentId; attachments.get returns its bytes."""
    built = EmailMessage()
    built["From"] = "alice@customer.example"
    built["Subject"] = "report"
    built.set_content("see attached")
    built.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="r.pdf")
    stored = gmail.deliver(built.as_bytes())
    full = client.users().messages().get(userId="me", id=stored.id).execute()
    part = full["payload"]["parts"][1]
    assert part["filename"] == "r.pdf" and "attachmentId" in part["body"]
    attachment = (
        client.users()
        .messages()
        .attachments()
        .get(userId="me", messageId=stored.id, id=part["body"]["attachmentId"])
        .execute()
    )
    assert base64.urlsafe_b64decode(attachment["data"]) == b"%PDF-1.4 data"


def test_errors_have_googles_shape(gmail: GmailEmulator, client: Any) -> None:
    """Unknown ids are 404 notFound, a send without raw is 400, another user is 403."""
    with pytest.raises(HttpError) as missing:
        client.users().messages().get(userId="me", id="0000000000000000").execute()
    assert (
        missing.value.resp.status == 404
        and missing.value.reason == "Requested entity was not found."
    )
    with pytest.raises(HttpError) as empty:
        client.users().messages().send(userId="me", body={}).execute()
    assert empty.value.resp.status == 400
    with pytest.raises(HttpError) as other:
        client.users().messages().list(userId="someone@else.example").execute()
    assert other.value.resp.status == 403


def test_send_joins_a_thread_only_with_a_matching_subject(
    gmail: GmailEmulator, client: Any
) -> None:
    """As in Gmail, threadId is honoured when the subject matches (Re: aside)."""
    first = gmail.deliver(message("Invoice", "hi", "<t1@customer.example>"))
    reply = message("Re: Invoice", "answer", "<t2@sandbox.example>")
    other = message("Something else", "answer", "<t3@sandbox.example>")
    sent = (
        client.users()
        .messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(reply).decode(), "threadId": first.thread_id},
        )
        .execute()
    )
    unrelated = (
        client.users()
        .messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(other).decode(), "threadId": first.thread_id},
        )
        .execute()
    )
    assert sent["threadId"] == first.thread_id and sent["labelIds"] == ["SENT"]
    assert unrelated["threadId"] != first.thread_id
