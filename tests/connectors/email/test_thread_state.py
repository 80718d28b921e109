"""What the worker reads before answering: the thread's history and its reply budget."""

from __future__ import annotations

import smtplib

from connectors.email.compose import OriginalEmail, build_reply
from connectors.email.history import thread_history
from connectors.email.reply_limit import reply_allowed
from connectors.email.smtp_send import SmtpRelay, send_reply_smtp
from sandbox.mail_sink import MailSink
from tests.bot.intake.test_smtp_intake import mail
from tests.connectors.email.support import (
    DB,
    RunningListener,
    Tenant,
    request_rows,
    worker_reads,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]


def test_history_and_reply_budget_of_a_thread(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """History holds the earlier turns (new text only, oldest first) up to the message
    being answered; after N replies in an hour the thread gets no more."""
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.sendmail(
            "alice@customer.example",
            [email_tenant.inbox],
            mail(email_tenant.inbox, body="First question.", message_id="<h1@customer.example>"),
        )
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (first,) = request_rows(email_db, email_tenant.id)
    conversation = first["conversation_id"]
    original = OriginalEmail.from_payload(first["payload"])
    with MailSink() as sink:
        relay = SmtpRelay(host=sink.host, port=sink.port, security="none")
        for answer in ("First answer.", "A follow-up note."):
            send_reply_smtp(
                email_db,
                relay,
                tenant_id=email_tenant.id,
                conversation_id=conversation,
                message=build_reply(original, body=answer),
            )
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.sendmail(
            "alice@customer.example",
            [email_tenant.inbox],
            mail(
                email_tenant.inbox,
                body="Second question.\n\nOn Mon, Help wrote:\n> First answer.",
                message_id="<h2@customer.example>",
                in_reply_to="<h1@customer.example>",
                references="<h1@customer.example>",
            ),
        )
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    history = thread_history(
        email_db, email_tenant.id, conversation, before_message_id="<h2@customer.example>"
    )
    assert history == [
        {"role": "user", "content": "First question."},
        {"role": "assistant", "content": "First answer."},
        {"role": "assistant", "content": "A follow-up note."},
    ]
    assert reply_allowed(email_db, email_tenant.id, conversation, per_hour=3)
    assert not reply_allowed(email_db, email_tenant.id, conversation, per_hour=2)
