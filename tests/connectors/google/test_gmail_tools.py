"""Gmail read tools through google-api-python-client against the Gmail emulator: a
thread delivered to the mailbox is found by a search and read as plain text."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from email.message import EmailMessage

import httplib2

from connectors.credentials import CredentialStore, cipher_from_settings
from connectors.google import gmail as gmail_api
from connectors.google.client import google_session
from connectors.rest import RetryPolicy
from sandbox.gmail_api import GmailEmulator
from testbed.markers import new_marker
from tests.connectors.google.conftest import OWNER
from tests.connectors.workspace import Workspace


def _mail(subject: str, message_id: str, text: str, **headers: str) -> EmailMessage:
    built = EmailMessage()
    built["From"] = "Alice Customer <alice@customer.example>"
    built["To"] = OWNER
    built["Subject"] = subject
    built["Message-ID"] = message_id
    built["Date"] = "Tue, 04 Mar 2025 09:30:00 +0000"
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(text)
    return built


def test_a_delivered_thread_is_found_and_read_as_text(
    workspace: Workspace, gmail: GmailEmulator
) -> None:
    """Search finds the thread with its subject, sender and size; reading it gives each
    message's plain text (HTML-only mail included) and lists attachments without content."""
    word = f"invoice{new_marker(6)}"
    first_id = f"<{uuid.uuid4().hex}@customer.example>"
    gmail.deliver(_mail(f"Where is {word}?", first_id, f"Hi, {word} never arrived.").as_bytes())
    reply = _mail(
        f"Re: Where is {word}?", f"<{uuid.uuid4().hex}@customer.example>", "", In_Reply_To=first_id
    )
    reply.set_content(f"<p>Found it, <b>{word}</b> is attached.</p>", subtype="html")
    reply.add_attachment(
        b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    gmail.deliver(reply.as_bytes())

    found = workspace.call("gmail_search_threads", {"query": word})

    assert len(found["threads"]) == 1
    summary = found["threads"][0]
    assert summary["subject"] == f"Where is {word}?"
    assert summary["from"] == "Alice Customer <alice@customer.example>"
    assert summary["messages"] == 2

    thread = workspace.call("gmail_read_thread", {"thread_id": summary["thread_id"]})

    first, second = thread["messages"]
    assert first["text"] == f"Hi, {word} never arrived."
    assert first["from"] == "Alice Customer <alice@customer.example>" and first["to"] == [OWNER]
    assert second["text"] == f"Found it, {word} is attached."
    assert second["attachments"] == [
        {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 19}
    ]
    assert "PDF-1.4" not in repr(thread)


def test_a_search_follows_page_tokens(workspace: Workspace, gmail: GmailEmulator) -> None:
    """More threads than one page are gathered across pages, newest first."""
    word = f"batch{new_marker(6)}"
    for n in range(60):
        gmail.deliver(_mail(f"{word} #{n}", f"<{word}-{n}@customer.example>", word).as_bytes())
    session = google_session(
        gmail_api.gmail_read_service(workspace.settings.gmail_api_url, httplib2.Http()),
        CredentialStore(workspace.pool, cipher_from_settings(workspace.settings)),
        token_url=workspace.settings.google_oauth_token_url,
        timeout=10,
        retry=RetryPolicy(),
    )

    found = gmail_api.search_threads(session(workspace.tenant_id), word, limit=55)

    assert len(found) == 55 and len({t["thread_id"] for t in found}) == 55
    assert found[0]["subject"] == f"{word} #59"


def test_an_unknown_thread_is_named(workspace: Workspace) -> None:
    """Reading a thread that does not exist says so, in words."""
    result = workspace.call("gmail_read_thread", {"thread_id": "18c0000000ffffff"})

    assert result == {"error": "Gmail: no such thread"}


def test_a_tenant_without_gmail_is_told_how_to_connect(
    new_workspace: Callable[[], Workspace],
) -> None:
    """Before an admin connects Gmail, its tools say so."""
    result = new_workspace().call("gmail_search_threads", {"query": "anything"})

    assert "`/agent connect gmail`" in result["error"]
