"""Knowing a customer's Message-ID does not let a stranger into their conversation: a
message joins a thread only if its sender took part in it, so the stranger's draft never
sees the customer's mail."""

from __future__ import annotations

import smtplib
from email import policy
from email.message import EmailMessage

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.security.conftest import DB
from tests.support.channels import admin_command
from tests.support.conversation import PLAN
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack

# Senders of this module only: the flood gate counts drafts per sender in the session's
# shared tenant.
CUSTOMER = f"alice-{new_marker(6)}@customer.example"
STRANGER = f"mallory-{new_marker(6)}@elsewhere.example"
COLLEAGUE = f"bob-{new_marker(6)}@customer.example"


def _mail(
    sender: str, to: str, body: str, message_id: str, in_reply_to: str | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Re: My order" if in_reply_to else "My order"
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)


def _send(port: int, sender: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def _request(db: DB, message_id: str) -> dict[str, object]:
    """The request for the message, once the worker has read it (and threaded it)."""
    row = wait_for(
        lambda: db.execute(
            """SELECT id, status, payload FROM inbound_requests
               WHERE source = 'email' AND external_id = %s AND payload ? 'conversation_id'""",
            (message_id,),
        ).fetchone(),
        message=f"the request for {message_id}, read",
    )
    return dict(row)


def _drafted(llm: OpenAIEmulator, marker: str) -> str:
    """Everything the model was sent while drafting the reply to the mail with `marker`."""
    requests = wait_for(
        lambda: llm.requests(match=marker), timeout=90, message="the draft's model call"
    )
    return "\n".join(str(r["messages"]) for r in requests)


def _script(llm: OpenAIEmulator, marker: str) -> None:
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"Thanks for writing ({marker}).", "citations": []}),
        match=marker,
    )


def test_a_stranger_replying_to_a_customers_message_id_starts_their_own_conversation(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """Alice writes with her card's last digits; a stranger sends In-Reply-To Alice's
    Message-ID. The stranger's mail is a conversation of its own, and the model drafting
    the reply to it is given nothing of Alice's mail."""
    inbox, port, _ = email_inbox
    secret = f"order {new_marker(8)} for Alice's flat 4B"
    alice_marker, stranger_marker = new_marker(8), new_marker(8)
    _script(llm, alice_marker)
    _script(llm, stranger_marker)
    alice_id = f"<{alice_marker}@customer.example>"
    _send(port, CUSTOMER, inbox, _mail(CUSTOMER, inbox, f"{secret} ({alice_marker})", alice_id))
    alice = _request(db, alice_id)
    _drafted(llm, alice_marker)

    stranger_id = f"<{stranger_marker}@elsewhere.example>"
    hijack = _mail(STRANGER, inbox, f"What did I order? ({stranger_marker})", stranger_id, alice_id)
    _send(port, STRANGER, inbox, hijack)
    stranger = _request(db, stranger_id)

    assert stranger["payload"]["conversation_id"] != alice["payload"]["conversation_id"]  # type: ignore[index]
    seen_by_model = _drafted(llm, stranger_marker)
    assert secret not in seen_by_model and alice_marker not in seen_by_model
    assert "email.thread_not_joined" in stack.worker.log_text()


def test_the_customer_and_with_the_domain_setting_a_colleague_still_join(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """Alice's own follow-up joins her conversation (and its draft sees her first mail);
    a colleague at her domain joins only once the tenant sets `email_thread_scope` to
    `domain`."""
    inbox, port, _ = email_inbox
    first, follow_up, colleague, later = (new_marker(8) for _ in range(4))
    for marker in (first, follow_up, colleague, later):
        _script(llm, marker)
    first_id = f"<{first}@customer.example>"
    _send(port, CUSTOMER, inbox, _mail(CUSTOMER, inbox, f"Hello ({first})", first_id))
    conversation = _request(db, first_id)["payload"]["conversation_id"]  # type: ignore[index]
    _drafted(llm, first)

    follow_id = f"<{follow_up}@customer.example>"
    _send(
        port,
        CUSTOMER,
        inbox,
        _mail(CUSTOMER, inbox, f"Any news? ({follow_up})", follow_id, first_id),
    )
    assert _request(db, follow_id)["payload"]["conversation_id"] == conversation  # type: ignore[index]
    assert first in _drafted(llm, follow_up)

    colleague_id = f"<{colleague}@customer.example>"
    _send(
        port,
        COLLEAGUE,
        inbox,
        _mail(COLLEAGUE, inbox, f"Me too ({colleague})", colleague_id, first_id),
    )
    assert _request(db, colleague_id)["payload"]["conversation_id"] != conversation  # type: ignore[index]

    answer = admin_command(stack.slack, "C0GENERAL", "email-threads domain")
    assert "anyone at the sender's domain" in answer
    later_id = f"<{later}@customer.example>"
    _send(
        port, COLLEAGUE, inbox, _mail(COLLEAGUE, inbox, f"Still me ({later})", later_id, first_id)
    )
    assert _request(db, later_id)["payload"]["conversation_id"] == conversation  # type: ignore[index]
