"""Agent replies over SMTP (aiosmtplib) reach the sink exactly once, whatever fails when."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from connectors.email.compose import OriginalEmail, build_reply
from connectors.email.outbound import (
    PermanentSendError,
    SendResult,
    TransientSendError,
    load_outbound,
)
from connectors.email.smtp_send import SmtpRelay, send_reply_smtp
from connectors.email.threads import start_conversation
from sandbox.mail_sink import MailSink
from tests.bot.intake.test_smtp_intake import mail
from tests.connectors.email.certs import make_self_signed
from tests.connectors.email.support import (
    DB,
    REPO,
    RunningListener,
    Tenant,
    request_rows,
    worker_reads,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]

CHILD_TIMEOUT = 20.0  # seconds


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


def relay_to(sink: MailSink) -> SmtpRelay:
    return SmtpRelay(host=sink.host, port=sink.port, security="none", timeout=10)


def send_to_sink(
    sink: MailSink, email_db: DB, email_tenant: Tenant, conversation: int, reply: EmailMessage
) -> SendResult:
    """Send ``reply`` in ``conversation`` through the sink, as the worker would."""
    return send_reply_smtp(
        email_db,
        relay_to(sink),
        tenant_id=email_tenant.id,
        conversation_id=conversation,
        message=reply,
    )


def a_reply(email_tenant: Tenant, email_db: DB) -> tuple[int, EmailMessage]:
    """A reply to a customer's message, in its conversation, ready to send."""
    conversation = start_conversation(email_db, email_tenant.id, "<q1@customer.example>")
    original = OriginalEmail.from_payload(
        {
            "message_id": "<q1@customer.example>",
            "references": [],
            "subject": "Refund?",
            "from": {"name": "Alice", "address": "alice@customer.example"},
            "inbox": email_tenant.inbox,
        }
    )
    return conversation, build_reply(original, body="Your refund is on its way.")


def status_of(email_db: DB, email_tenant: Tenant, message: EmailMessage) -> str:
    outbound = load_outbound(email_db, email_tenant.id, str(message["Message-ID"]))
    assert outbound is not None
    return outbound.status


def test_reply_arrives_once_with_its_headers(
    sink: MailSink, email_tenant: Tenant, email_db: DB
) -> None:
    """The sink receives the reply from the inbox, to the customer, threaded, once; a
    second call for the same message is recognised and sends nothing."""
    conversation, reply = a_reply(email_tenant, email_db)
    result = send_to_sink(sink, email_db, email_tenant, conversation, reply)
    again = send_to_sink(sink, email_db, email_tenant, conversation, reply)
    assert (result.status, again.status) == ("sent", "already_sent")
    (received,) = sink.messages()
    assert received.mail_from == email_tenant.inbox
    assert received.rcpt_tos == ("alice@customer.example",)
    headers = received.parsed()
    assert headers["Message-ID"] == reply["Message-ID"]
    assert headers["In-Reply-To"] == "<q1@customer.example>"
    assert headers["References"] == "<q1@customer.example>"
    assert headers["Subject"] == "Re: Refund?"
    history = email_db.execute(
        "SELECT role, text FROM messages WHERE conversation_id = %s", (conversation,)
    ).fetchall()
    assert history == [{"role": "assistant", "text": "Your refund is on its way."}]


def test_worker_killed_before_data_retries_and_delivers_once(
    sink: MailSink, email_tenant: Tenant, email_db: DB, email_database_url: str, tmp_path: Path
) -> None:
    """Killed while the relay was still answering RCPT (nothing could be accepted yet),
    the send is retried and the message arrives exactly once."""
    conversation, reply = a_reply(email_tenant, email_db)
    _kill_a_send_held_at(
        "rcpt", sink, email_tenant, conversation, reply, email_database_url, tmp_path
    )
    assert status_of(email_db, email_tenant, reply) == "sending"
    result = send_to_sink(sink, email_db, email_tenant, conversation, reply)
    assert result.status == "sent"
    assert len(sink.messages()) == 1


def test_worker_killed_after_data_never_sends_twice(
    sink: MailSink, email_tenant: Tenant, email_db: DB, email_database_url: str, tmp_path: Path
) -> None:
    """Killed after the relay took the message but before its 250 was recorded, the
    retry does not send again: the delivery is marked unknown and audited for a person."""
    conversation, reply = a_reply(email_tenant, email_db)
    _kill_a_send_held_at(
        "data", sink, email_tenant, conversation, reply, email_database_url, tmp_path
    )
    assert status_of(email_db, email_tenant, reply) == "committing"
    result = send_to_sink(sink, email_db, email_tenant, conversation, reply)
    assert result.status == "unknown"
    assert len(sink.messages()) == 1
    audit = email_db.execute(
        "SELECT action FROM audit_log WHERE tenant_id = %s AND subject = %s",
        (email_tenant.id, str(reply["Message-ID"])),
    ).fetchall()
    assert audit == [{"action": "email.unknown"}]


def test_temporary_refusal_is_retried(sink: MailSink, email_tenant: Tenant, email_db: DB) -> None:
    """A 451 at DATA is a definite "not delivered": the retry sends it, once."""
    conversation, reply = a_reply(email_tenant, email_db)
    sink.answer_next_data("451 4.3.0 Try again later")
    with pytest.raises(TransientSendError):
        send_to_sink(sink, email_db, email_tenant, conversation, reply)
    assert status_of(email_db, email_tenant, reply) == "sending" and sink.messages() == []
    send_to_sink(sink, email_db, email_tenant, conversation, reply)
    assert len(sink.messages()) == 1


def test_permanent_refusal_is_recorded_and_not_retried(
    sink: MailSink, email_tenant: Tenant, email_db: DB
) -> None:
    """A 554 at DATA marks the send failed with the relay's answer; retrying does not resend."""
    conversation, reply = a_reply(email_tenant, email_db)
    sink.answer_next_data("554 5.7.1 Rejected by policy")
    for _ in range(2):
        with pytest.raises(PermanentSendError):
            send_to_sink(sink, email_db, email_tenant, conversation, reply)
    outbound = load_outbound(email_db, email_tenant.id, str(reply["Message-ID"]))
    assert outbound is not None and outbound.status == "failed"
    assert outbound.error is not None and "554" in outbound.error
    assert sink.messages() == []


def test_relay_down_is_temporary(email_tenant: Tenant, email_db: DB) -> None:
    """No relay listening: a temporary error, and the message can still be sent later."""
    conversation, reply = a_reply(email_tenant, email_db)
    with MailSink() as gone:
        port = gone.port
    with pytest.raises(TransientSendError):
        send_reply_smtp(
            email_db,
            SmtpRelay(host="127.0.0.1", port=port, security="none", timeout=5),
            tenant_id=email_tenant.id,
            conversation_id=conversation,
            message=reply,
        )
    assert status_of(email_db, email_tenant, reply) == "sending"


def test_starttls_and_auth_to_the_relay(email_tenant: Tenant, email_db: DB, tmp_path: Path) -> None:
    """With STARTTLS required and AUTH, the relay sees an encrypted, authenticated session."""
    certificate = make_self_signed(tmp_path)
    conversation, reply = a_reply(email_tenant, email_db)
    with MailSink(
        tls_context=certificate.server_context(),
        require_starttls=True,
        credentials=("agent", "relay-pass"),
    ) as secure:
        relay = SmtpRelay(
            host=secure.host,
            port=secure.port,
            security="starttls",
            username="agent",
            password="relay-pass",
            tls_context=certificate.client_context(),
        )
        send_reply_smtp(
            email_db, relay, tenant_id=email_tenant.id, conversation_id=conversation, message=reply
        )
        (received,) = secure.messages()
    assert received.tls and received.authenticated_as == "agent"


def test_customer_reply_to_our_reply_joins_the_thread(
    sink: MailSink, smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """Inbound question -> our reply through the sink -> the customer's answer to it is
    filed in the same conversation."""
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.sendmail(
            "alice@customer.example",
            [email_tenant.inbox],
            mail(email_tenant.inbox, subject="Refund?", message_id="<ask@customer.example>"),
        )
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (question,) = request_rows(email_db, email_tenant.id)
    payload: dict[str, Any] = question["payload"]
    reply = build_reply(OriginalEmail.from_payload(payload), body="Refund sent.")
    send_reply_smtp(
        email_db,
        relay_to(sink),
        tenant_id=email_tenant.id,
        conversation_id=payload["conversation_id"],
        message=reply,
    )
    sent = sink.messages()[0].parsed()
    answer = mail(
        email_tenant.inbox,
        subject=str(sent["Subject"]),
        body="Got it, thanks!",
        message_id="<thanks@customer.example>",
        in_reply_to=str(sent["Message-ID"]),
        references=str(sent["References"]) + " " + str(sent["Message-ID"]),
    )
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.sendmail("alice@customer.example", [email_tenant.inbox], answer)
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    rows = request_rows(email_db, email_tenant.id)
    assert [r["conversation_id"] for r in rows] == [payload["conversation_id"]] * 2


def _send_in_child(
    database_url: str,
    sink: MailSink,
    email_tenant: Tenant,
    conversation: int,
    message: EmailMessage,
    tmp_path: Path,
) -> subprocess.Popen[bytes]:
    path = tmp_path / "reply.eml"
    path.write_bytes(message.as_bytes())
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.connectors.email.send_in_child",
            database_url,
            sink.host,
            str(sink.port),
            str(email_tenant.id),
            str(conversation),
            str(path),
        ],
        cwd=REPO,
    )


def _kill_a_send_held_at(
    stage: str,
    sink: MailSink,
    email_tenant: Tenant,
    conversation: int,
    reply: EmailMessage,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A worker sending ``reply`` in a child process is SIGKILLed while the relay holds
    the session at ``stage``; the relay then answers again."""
    sink.hold(stage)
    child = _send_in_child(database_url, sink, email_tenant, conversation, reply, tmp_path)
    sink.wait_until_held(stage)
    _kill(child)
    sink.release()


def _kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as in a crash or an OOM kill: no cleanup runs."""
    child.kill()
    child.wait(CHILD_TIMEOUT)
