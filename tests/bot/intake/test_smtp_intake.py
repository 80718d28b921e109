"""Real SMTP sessions against the listener: what is accepted, refused, stored and queued."""

from __future__ import annotations

import asyncio
import smtplib
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest
import redis

from connectors.email.inbound_store import read_arrived
from connectors.email.parse import ParseLimits
from connectors.email.raw_mail import RawMailCipher
from guardrails.at_rest import AtRestMasker
from tests.connectors.email.support import (
    DB,
    RunningListener,
    Tenant,
    email_settings,
    make_tenant,
    request_rows,
    start_listener,
    worker_reads,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]

CUSTOMER = "alice@customer.example"


def mail(
    to: str,
    *,
    subject: str = "Where is my order?",
    body: str = "Hello, my order #1234 has not arrived yet.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Alice Example <{CUSTOMER}>"
    message["To"] = to
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)  # CRLF, as mail travels


def send(
    port: int, to: list[str], raw: bytes, sender: str = CUSTOMER
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(sender, to, raw)


def test_message_is_stored_with_its_raw_bytes_before_250(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """A 250 means the exact bytes (sealed) and the request are already in Postgres; the
    worker then reads the message into the request."""
    raw = mail(email_tenant.inbox, message_id="<first@customer.example>")
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        client.rcpt(email_tenant.inbox)
        code, _ = client.data(raw)
        # Checked before the session ends: the row exists the moment 250 is read.
        rows = request_rows(email_db, email_tenant.id)
    assert code == 250
    assert len(rows) == 1
    row = rows[0]
    sealed = bytes(row["raw"])
    assert b"my order #1234" not in sealed  # the raw bytes are stored sealed
    cipher = RawMailCipher.from_settings(smtp_listener.settings)
    assert cipher.open(email_tenant.id, "<first@customer.example>", sealed) == raw
    assert "my order" not in str(row["payload"])  # nothing in clear before it is read

    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (row,) = request_rows(email_db, email_tenant.id)
    payload = row["payload"]
    assert payload["text"] == "Hello, my order #1234 has not arrived yet."
    assert payload["from"] == {"name": "Alice Example", "address": CUSTOMER}
    assert payload["inbox"] == email_tenant.inbox
    assert payload["message_id"] == "<first@customer.example>"
    assert payload["conversation_id"] == row["conversation_id"] is not None
    assert cipher.open(email_tenant.id, "<first@customer.example>", bytes(row["raw"])) == raw

    # A job retried after reading it (a worker killed later in the run) reads it once.
    again = read_arrived(
        email_db, row["id"], cipher=cipher, limits=ParseLimits(), masker=AtRestMasker()
    )
    assert again is None
    assert request_rows(email_db, email_tenant.id) == [row]
    said = email_db.execute(
        "SELECT text FROM messages WHERE conversation_id = %s", (row["conversation_id"],)
    ).fetchall()
    assert said == [{"text": "Hello, my order #1234 has not arrived yet."}]


def test_answerable_mail_is_queued_for_the_agent(
    smtp_listener: RunningListener,
    email_tenant: Tenant,
    email_db: DB,
    redis_url: str,
    queue_namespace: str,
) -> None:
    """After the 250 the request is queued in Redis for a worker and marked 'queued'."""
    send(
        smtp_listener.port,
        [email_tenant.inbox],
        mail(email_tenant.inbox, message_id="<queued@customer.example>"),
    )
    request_id = _wait_status(email_db, email_tenant.id, "queued")
    client = redis.Redis.from_url(redis_url)
    queued = [
        m
        for key in client.scan_iter(f"{queue_namespace}-email*")
        if client.type(key) == b"hash"
        for m in client.hvals(key)
    ]
    assert any(f"[{request_id}]".encode() in m for m in queued)


def test_unknown_recipient_is_refused_at_rcpt_before_any_data(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """RCPT TO an address no tenant owns gets 550, so the sender never transmits the body."""
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        code, text = client.rcpt(f"nobody@{email_tenant.domain}")
        assert code == 550
        assert b"no such inbox" in text
        code, _ = client.docmd("DATA")
        assert code == 503  # no accepted recipient: no data is taken
    assert request_rows(email_db, email_tenant.id) == []


def test_suspended_tenant_gets_no_mail(smtp_listener: RunningListener, email_db: DB) -> None:
    """A suspended tenant's inbox is refused like an unknown one."""
    suspended = make_tenant(email_db)
    email_db.execute("UPDATE tenants SET status = 'suspended' WHERE id = %s", (suspended.id,))
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=10) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        assert client.rcpt(suspended.inbox)[0] == 550


def test_a_whole_domain_can_be_an_inbox(smtp_listener: RunningListener, email_db: DB) -> None:
    """With a domain inbox, any address at that domain reaches the tenant."""
    domain_tenant = make_tenant(email_db, domain_inbox=True)
    address = f"sales.team@{domain_tenant.domain}"
    send(smtp_listener.port, [address], mail(address))
    rows = request_rows(email_db, domain_tenant.id)
    assert [r["payload"]["inbox"] for r in rows] == [address]


def test_size_is_advertised_and_enforced(
    email_database_url: str, redis_url: str, queue_namespace: str, email_db: DB
) -> None:
    """EHLO advertises SIZE; a declared size above it gets 552 at MAIL, an undeclared one
    at the end of DATA, and nothing is stored."""
    email_tenant = make_tenant(email_db)
    settings = email_settings(
        email_database_url, redis_url, f"{queue_namespace}-email", email_max_message_bytes=4096
    )
    running = start_listener(settings)
    try:
        big = mail(email_tenant.inbox, body="x" * 70 + ("\n" + "y" * 70) * 80)
        with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("size") and client.esmtp_features["size"] == "4096"
            code, _ = client.mail(CUSTOMER, options=[f"SIZE={len(big)}"])
            assert code == 552
            client.rset()
            client.mail(CUSTOMER)
            client.rcpt(email_tenant.inbox)
            code, _ = client.data(big)
            assert code == 552
    finally:
        running.stop()
    assert request_rows(email_db, email_tenant.id) == []


def test_a_resent_message_is_stored_once(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """A sender retrying after a lost 250 gets 250 again, and nothing is stored twice."""
    raw = mail(email_tenant.inbox, message_id="<resent@customer.example>")
    send(smtp_listener.port, [email_tenant.inbox], raw)
    send(smtp_listener.port, [email_tenant.inbox], raw)
    assert len(request_rows(email_db, email_tenant.id)) == 1


def test_a_reply_joins_its_conversation(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """A customer's reply (In-Reply-To/References) lands in the first message's
    conversation, also when it answers one of our own outbound replies."""
    send(
        smtp_listener.port,
        [email_tenant.inbox],
        mail(email_tenant.inbox, message_id="<root@customer.example>"),
    )
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    rows = request_rows(email_db, email_tenant.id)
    conversation = rows[0]["conversation_id"]
    email_db.execute(
        """INSERT INTO email_messages (tenant_id, conversation_id, direction, message_id,
             raw, size_bytes, transport, status)
           VALUES (%s, %s, 'outbound', '<agent-reply@t.example>', '', 0, 'smtp', 'sent')""",
        (email_tenant.id, conversation),
    )
    reply = mail(
        email_tenant.inbox,
        subject="Re: Where is my order?",
        body="Thanks! And when will it ship?\n\nOn Mon, Support wrote:\n> It is on its way.",
        message_id="<second@customer.example>",
        in_reply_to="<agent-reply@t.example>",
        references="<root@customer.example> <agent-reply@t.example>",
    )
    send(smtp_listener.port, [email_tenant.inbox], reply)
    other = mail(email_tenant.inbox, subject="Another topic", message_id="<other@customer.example>")
    send(smtp_listener.port, [email_tenant.inbox], other)
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    rows = request_rows(email_db, email_tenant.id)
    assert [r["conversation_id"] == conversation for r in rows] == [True, True, False]
    assert rows[1]["payload"]["text"] == "Thanks! And when will it ship?"
    assert "It is on its way." in rows[1]["payload"]["quoted"]


@pytest.mark.parametrize(
    ("headers", "sender", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, CUSTOMER, "auto_submitted"),
        ({"Precedence": "bulk"}, CUSTOMER, "precedence"),
        ({"List-Id": "<news.customer.example>"}, CUSTOMER, "mailing_list"),
        ({}, "", "bounce_sender"),
        ({}, "MAILER-DAEMON@customer.example", "bounce_sender"),
    ],
    ids=["auto-submitted", "precedence-bulk", "list-id", "null-sender", "mailer-daemon"],
)
def test_automatic_mail_is_stored_but_never_answered(
    smtp_listener: RunningListener,
    email_tenant: Tenant,
    email_db: DB,
    headers: dict[str, str],
    sender: str,
    kind: str,
) -> None:
    """Auto-replies, list mail and bounces are kept and, once read, marked 'ignored', with
    the reason: the agent never answers them."""
    send(
        smtp_listener.port,
        [email_tenant.inbox],
        mail(email_tenant.inbox, extra=headers),
        sender=sender,
    )
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (row,) = request_rows(email_db, email_tenant.id)
    assert row["status"] == "ignored"
    assert row["auto_kind"] == kind
    assert row["payload"]["no_reply"]["kind"] == kind


def test_one_message_to_two_tenants_is_stored_for_each(
    smtp_listener: RunningListener, email_db: DB
) -> None:
    """Recipients of different tenants each get their own copy, invisible to the other."""
    first, second = make_tenant(email_db), make_tenant(email_db)
    raw = mail(f"{first.inbox}, {second.inbox}", message_id="<both@customer.example>")
    send(smtp_listener.port, [first.inbox, second.inbox], raw)
    for email_tenant in (first, second):
        worker_reads(email_db, smtp_listener.settings, email_tenant.id)
        (row,) = request_rows(email_db, email_tenant.id)
        assert row["payload"]["envelope"]["rcpt_to"] == [email_tenant.inbox]


def test_aiosmtplib_client_delivers(
    smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """Mail sent by aiosmtplib (an asyncio client) is accepted and parsed the same way."""
    message = EmailMessage()
    message["From"] = CUSTOMER
    message["To"] = email_tenant.inbox
    message["Subject"] = "Grüße aus Köln"
    message.set_content("Ich habe eine Frage zu meiner Rechnung.")
    errors, response = asyncio.run(
        aiosmtplib.send(message, hostname="127.0.0.1", port=smtp_listener.port, start_tls=False)
    )
    assert errors == {} and response.startswith("2.0.0")
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (row,) = request_rows(email_db, email_tenant.id)
    assert row["payload"]["subject"] == "Grüße aus Köln"
    assert row["payload"]["text"] == "Ich habe eine Frage zu meiner Rechnung."


def _wait_status(db: DB, tenant_id: int, status: str) -> int:
    from tests.support.processes import wait_for

    def found() -> int | None:
        rows = request_rows(db, tenant_id)
        return rows[0]["id"] if rows and rows[0]["status"] == status else None

    request_id: int = wait_for(found, timeout=10, message=f"a request in status {status}")
    return request_id
