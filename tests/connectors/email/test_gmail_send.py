"""Agent replies through the real google-api-python-client against the local Gmail emulator."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httplib2
import pytest

from connectors.email.compose import OriginalEmail, build_reply
from connectors.email.gmail_send import gmail_service, send_via_gmail
from connectors.email.outbound import PermanentSendError, TransientSendError, load_outbound
from connectors.email.parse import parse_email
from connectors.email.threads import start_conversation
from sandbox.gmail_api import GmailEmulator
from tests.connectors.email.support import (
    DB,
    Tenant,
    make_tenant,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]

QUESTION = (
    b"From: Alice <alice@customer.example>\r\n"
    b"To: {inbox}\r\n"
    b"Subject: Invoice copy\r\n"
    b"Message-ID: <inv-1@customer.example>\r\n"
    b"\r\n"
    b"Could you send me a copy of invoice 77?\r\n"
)


@pytest.fixture
def gmail() -> Iterator[GmailEmulator]:
    with GmailEmulator(address="help@acme.example") as emulator:
        yield emulator


@pytest.fixture
def email_tenant(email_db: DB) -> Tenant:
    return make_tenant(email_db, transport="gmail")


def service_for(emulator: GmailEmulator) -> Any:
    """The real client, built from its bundled discovery document, aimed at the emulator."""
    return gmail_service(http=httplib2.Http(timeout=10), api_url=emulator.api_url)


def question_and_reply(
    gmail: GmailEmulator, email_tenant: Tenant, email_db: DB
) -> tuple[str, int, EmailMessage]:
    """The customer's mail in the Gmail inbox, its conversation, and our reply to it."""
    raw = QUESTION.replace(b"{inbox}", email_tenant.inbox.encode())
    delivered = gmail.deliver(raw)
    mail = parse_email(raw)
    conversation = start_conversation(email_db, email_tenant.id, mail.message_id)
    original = OriginalEmail.from_payload(
        {
            "message_id": mail.message_id,
            "references": [],
            "subject": mail.subject,
            "from": {"name": "Alice", "address": "alice@customer.example"},
            "inbox": email_tenant.inbox,
        }
    )
    return delivered.thread_id, conversation, build_reply(original, body="Attached, Alice.")


def send(
    gmail: GmailEmulator, email_db: DB, email_tenant: Tenant, conversation: int, reply: EmailMessage
):  # type: ignore[no-untyped-def]
    return send_via_gmail(
        email_db,
        service_for(gmail),
        tenant_id=email_tenant.id,
        conversation_id=conversation,
        message=reply,
    )


def test_reply_joins_the_customers_gmail_thread(
    gmail: GmailEmulator, email_tenant: Tenant, email_db: DB
) -> None:
    """users.messages.send gets the thread id found by the answered Message-ID, so the
    reply sits in the customer's thread, with our Message-ID and threading headers."""
    thread_id, conversation, reply = question_and_reply(gmail, email_tenant, email_db)
    result = send(gmail, email_db, email_tenant, conversation, reply)
    (sent,) = gmail.sent()
    assert result.status == "sent"
    assert (result.provider_message_id, result.provider_thread_id) == (sent.id, thread_id)
    assert sent.thread_id == thread_id
    assert sent.header("Message-ID") == str(reply["Message-ID"])
    assert sent.header("In-Reply-To") == "<inv-1@customer.example>"
    assert sent.header("Subject") == "Re: Invoice copy"


def test_second_call_does_not_send_again(
    gmail: GmailEmulator, email_tenant: Tenant, email_db: DB
) -> None:
    """Sending the same message again is answered from our record, with Gmail's ids."""
    _, conversation, reply = question_and_reply(gmail, email_tenant, email_db)
    first = send(gmail, email_db, email_tenant, conversation, reply)
    again = send(gmail, email_db, email_tenant, conversation, reply)
    assert again.status == "already_sent"
    assert again.provider_message_id == first.provider_message_id
    assert len(gmail.sent()) == 1


def test_lost_response_after_gmail_sent_it_is_not_sent_twice(
    gmail: GmailEmulator, email_tenant: Tenant, email_db: DB
) -> None:
    """Gmail kept the message but the answer was an error: the retry finds it by its
    Message-ID (rfc822msgid: search) and records it instead of sending again."""
    _, conversation, reply = question_and_reply(gmail, email_tenant, email_db)
    gmail.fail_next_send(503, after_commit=True)
    with pytest.raises(TransientSendError):
        send(gmail, email_db, email_tenant, conversation, reply)
    outbound = load_outbound(email_db, email_tenant.id, str(reply["Message-ID"]))
    assert outbound is not None and outbound.status == "committing"
    result = send(gmail, email_db, email_tenant, conversation, reply)
    (sent,) = gmail.sent()
    assert result.status == "sent" and result.provider_message_id == sent.id


def test_failure_before_gmail_kept_it_is_sent_on_retry(
    gmail: GmailEmulator, email_tenant: Tenant, email_db: DB
) -> None:
    """A 503 that kept nothing: the retry's search finds nothing and sends it, once."""
    _, conversation, reply = question_and_reply(gmail, email_tenant, email_db)
    gmail.fail_next_send(503, after_commit=False)
    with pytest.raises(TransientSendError):
        send(gmail, email_db, email_tenant, conversation, reply)
    assert gmail.sent() == []
    assert send(gmail, email_db, email_tenant, conversation, reply).status == "sent"
    assert len(gmail.sent()) == 1


def test_found_even_when_gmail_rewrote_the_message_id(email_db: DB) -> None:
    """If Gmail replaced our Message-ID, the retry still finds the sent copy by the
    X-Chatops-Message-Id header it carries."""
    email_tenant = make_tenant(email_db, transport="gmail")
    with GmailEmulator(address=email_tenant.inbox, rewrite_message_ids=True) as rewriting:
        _, conversation, reply = question_and_reply(rewriting, email_tenant, email_db)
        rewriting.fail_next_send(503, after_commit=True)
        with pytest.raises(TransientSendError):
            send(rewriting, email_db, email_tenant, conversation, reply)
        assert send(rewriting, email_db, email_tenant, conversation, reply).status == "sent"
        (sent,) = rewriting.sent()
    assert sent.header("Message-ID") != str(reply["Message-ID"])


def test_refusal_is_permanent(gmail: GmailEmulator, email_tenant: Tenant, email_db: DB) -> None:
    """A 400 from Gmail marks the send failed; later attempts do not try again."""
    _, conversation, reply = question_and_reply(gmail, email_tenant, email_db)
    gmail.fail_next_send(400, after_commit=False)
    for _ in range(2):
        with pytest.raises(PermanentSendError):
            send(gmail, email_db, email_tenant, conversation, reply)
    outbound = load_outbound(email_db, email_tenant.id, str(reply["Message-ID"]))
    assert outbound is not None and outbound.status == "failed"
    assert gmail.sent() == []
