"""Replies that thread correctly in the customer's mail client, and new messages."""

from __future__ import annotations

from connectors.email.compose import (
    OriginalEmail,
    build_new_email,
    build_reply,
    from_storable,
    render,
    reply_subject,
    to_storable,
)
from connectors.email.parse import parse_email

PAYLOAD = {
    "message_id": "<m3@customer.example>",
    "references": ["<m1@customer.example>", "<m2@acme.example>"],
    "subject": "Re: Order 1234",
    "from": {"name": "Alice Example", "address": "alice@customer.example"},
    "reply_to": [],
    "to": [{"name": "", "address": "help@acme.example"}],
    "cc": [{"name": "Bob", "address": "bob@customer.example"}],
    "inbox": "help@acme.example",
}


def test_reply_carries_threading_headers() -> None:
    """In-Reply-To names the message answered, References the whole chain, the subject
    gets one "Re:", and From is the inbox the customer wrote to."""
    reply = build_reply(OriginalEmail.from_payload(PAYLOAD), body="It ships tomorrow.")
    assert reply["In-Reply-To"] == "<m3@customer.example>"
    assert str(reply["References"]).split() == [
        "<m1@customer.example>",
        "<m2@acme.example>",
        "<m3@customer.example>",
    ]
    assert reply["Subject"] == "Re: Order 1234"
    assert reply["From"].addresses[0].addr_spec == "help@acme.example"
    assert [a.addr_spec for a in reply["To"].addresses] == ["alice@customer.example"]
    assert reply["Cc"] is None
    assert parse_email(reply.as_bytes()).text == "It ships tomorrow."


def test_message_id_is_ours_and_new_each_time() -> None:
    """Each build has a fresh Message-ID at the inbox's domain: the idempotency key."""
    original = OriginalEmail.from_payload(PAYLOAD)
    first, second = build_reply(original, body="a"), build_reply(original, body="a")
    assert str(first["Message-ID"]).endswith("@acme.example>")
    assert first["Message-ID"] != second["Message-ID"]


def test_reply_to_and_reply_all() -> None:
    """Reply-To wins over From; reply-all copies the other recipients, never ourselves."""
    payload = PAYLOAD | {"reply_to": [{"name": "", "address": "orders@customer.example"}]}
    reply = build_reply(OriginalEmail.from_payload(payload), body="ok", reply_all=True)
    assert [a.addr_spec for a in reply["To"].addresses] == ["orders@customer.example"]
    assert [a.addr_spec for a in reply["Cc"].addresses] == ["bob@customer.example"]


def test_reply_subject_prefix_is_not_doubled() -> None:
    """ "Re:", "RE:" and "AW:" are already reply prefixes."""
    assert reply_subject("Order 1234") == "Re: Order 1234"
    assert reply_subject("RE: Order 1234") == "RE: Order 1234"
    assert reply_subject("AW: Bestellung") == "AW: Bestellung"


def test_new_email_starts_a_thread() -> None:
    """A new message has a Message-ID and no threading headers."""
    message = build_new_email(
        from_address="help@acme.example",
        to=["carol@partner.example"],
        subject="Quarterly report",
        body="Attached soon.",
    )
    assert message["In-Reply-To"] is None and message["References"] is None
    assert str(message["Message-ID"]).endswith("@acme.example>")


def test_reply_renders_for_review_and_survives_storage() -> None:
    """The reviewer sees from/to/cc/subject/body; stored and restored for the send, the
    message keeps its Message-ID, so a retry after approval is the same send."""
    reply = build_reply(OriginalEmail.from_payload(PAYLOAD), body="It ships.", reply_all=True)
    shown = render(reply)
    assert shown.from_ == "help@acme.example"
    assert shown.to == ["Alice Example <alice@customer.example>"]
    assert shown.cc == ["Bob <bob@customer.example>"]
    assert (shown.subject, shown.body.strip()) == ("Re: Order 1234", "It ships.")
    restored = from_storable(to_storable(reply))
    assert restored["Message-ID"] == reply["Message-ID"]
    assert restored["References"] == reply["References"]
