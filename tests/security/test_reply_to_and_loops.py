"""Replies never go to our own inboxes, go elsewhere than the sender only as new mail
could (and then the approver is told), and obey the tenant's e-mail rules."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from connectors.email.inboxes import add_inbox
from connectors.email.reply_policy import NOT_THE_SENDER
from sandbox.mail_sink import MailSink
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.security.conftest import APPROVALS, APPROVER, DB
from tests.support.conversation import PLAN
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack

# Each test writes as a sender of its own: the flood gate counts drafts per sender, and
# the session's tenant is shared by every test.
CUSTOMER = f"alice-{new_marker(6)}@customer.example"


@pytest.fixture
def partner_allowed(db: DB, tenant: int) -> Iterator[str]:
    """New mail may go to partner.example (the tenant's allowlist)."""
    db.execute(
        "INSERT INTO tenant_email_allowlist (tenant_id, domain) VALUES (%s, 'partner.example')"
        " ON CONFLICT DO NOTHING",
        (tenant,),
    )
    yield "partner.example"
    db.execute(
        "DELETE FROM tenant_email_allowlist WHERE tenant_id = %s AND domain = 'partner.example'",
        (tenant,),
    )


def _send(
    port: int, inbox: str, marker: str, *, sender: str = CUSTOMER, reply_to: str | None = None
) -> str:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = inbox
    message["Subject"] = f"Question {marker}"
    message["Message-ID"] = f"<{marker}@customer.example>"
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(f"Where is my parcel? ({marker})")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [inbox], message.as_bytes(policy=policy.SMTP))
    return str(message["Message-ID"])


def _script(llm: OpenAIEmulator, marker: str) -> None:
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"It ships today ({marker}).", "citations": []}),
        match=marker,
    )


def _reply_action(db: DB, marker: str) -> dict[str, Any]:
    row = wait_for(
        lambda: db.execute(
            """SELECT * FROM pending_actions WHERE tool = 'reply_email'
               AND payload->>'text' LIKE %s AND approval_ts IS NOT NULL""",
            (f"%({marker})%",),
        ).fetchone(),
        timeout=90,
        message="the drafted reply",
    )
    return dict(row)


def _recipients(stack: Stack, action: dict[str, Any]) -> list[str]:
    """Where the drafted reply goes: its message, opened (it is stored sealed)."""
    from connectors.email.outbound import envelope_of
    from connectors.email.raw_mail import RawMailCipher
    from connectors.email.tools import ReplyEmail, reply_message

    assert action["payload"]["sealed"] is True
    cipher = RawMailCipher.derive(stack.env["SLACK_SIGNING_SECRET"])
    arguments = ReplyEmail.model_validate(action["payload"])
    return envelope_of(reply_message(cipher, action["tenant_id"], arguments))[1]


def _finished(db: DB, message_id: str) -> dict[str, Any]:
    row = wait_for(
        lambda: db.execute(
            """SELECT status, error FROM inbound_requests WHERE source = 'email'
               AND external_id = %s AND status IN ('done', 'ignored', 'failed')""",
            (message_id,),
        ).fetchone(),
        timeout=90,
        message=f"the request for {message_id} to finish",
    )
    return dict(row)


def test_a_reply_to_our_own_inbox_is_never_proposed(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """Reply-To naming another of our inboxes is left out (the reply goes to the sender,
    and the card says so); mail whose sender is one of our inboxes gets no reply at all
    and costs no model call."""
    inbox, port, _ = email_inbox
    other_inbox = f"sales-{new_marker(6)}@acme.example"
    add_inbox(db, tenant, other_inbox)
    marker = new_marker(8)
    _script(llm, marker)
    _send(port, inbox, marker, reply_to=other_inbox)
    action = _reply_action(db, marker)
    assert _recipients(stack, action) == [CUSTOMER]
    assert any("left out one address" in f and "own inboxes" in f for f in action["flags"])

    looped = new_marker(8)
    message_id = _send(port, inbox, looped, sender=other_inbox)
    assert _finished(db, message_id) == {
        "status": "ignored",
        "error": "the email asks for replies to one of our own inboxes (a mail loop)",
    }
    assert llm.requests(match=looped) == []


def test_an_outside_reply_to_goes_only_where_new_mail_may_and_the_approver_sees_it(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    partner_allowed: str,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """Reply-To in a domain new mail may not go to: the reply goes to the sender, with a
    flag. Reply-To in an allowed domain: the reply goes there, and the card's summary
    and flag say it is not the sender."""
    inbox, port, _ = email_inbox
    refused, allowed = new_marker(8), new_marker(8)
    _script(llm, refused)
    _script(llm, allowed)
    _send(port, inbox, refused, reply_to="collector@elsewhere.example")
    action = _reply_action(db, refused)
    assert _recipients(stack, action) == [CUSTOMER]
    assert any("goes to the sender instead" in f for f in action["flags"])

    _send(port, inbox, allowed, reply_to=f"billing@{partner_allowed}")
    action = _reply_action(db, allowed)
    assert _recipients(stack, action) == [f"billing@{partner_allowed}"]
    assert CUSTOMER not in action["summary"]  # stored as the conversation's placeholder
    assert NOT_THE_SENDER in action["flags"]
    card = json.dumps(stack.slack.workspace.message(APPROVALS, action["approval_ts"]).blocks)
    # The sender as approvers see them by default: partly masked.
    assert f"(not the sender, {CUSTOMER[0]}***@customer.example)" in card
    assert "other than the sender" in card and CUSTOMER not in card


def test_a_reply_is_checked_again_when_it_is_sent(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    partner_allowed: str,
    email_inbox: tuple[str, int, ChatopsProcess],
    mail_outbox: MailSink,
) -> None:
    """A reply proposed to an allowed outside domain, approved after the domain was taken
    off the allowlist, fails with the reason and is not delivered."""
    inbox, port, _ = email_inbox
    marker = new_marker(8)
    _script(llm, marker)
    _send(port, inbox, marker, reply_to=f"billing@{partner_allowed}")
    action = _reply_action(db, marker)
    db.execute(
        "DELETE FROM tenant_email_allowlist WHERE tenant_id = %s AND domain = %s",
        (tenant, partner_allowed),
    )
    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    failed = wait_for(
        lambda: (
            (
                row := db.execute(
                    "SELECT status, error FROM pending_actions WHERE id = %s", (action["id"],)
                ).fetchone()
            )["status"]
            == "failed"
            and row
        ),
        timeout=30,
        message="the approved reply to fail",
    )
    assert f"may not write to billing@{partner_allowed}" in failed["error"]
    time.sleep(1)
    assert [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")] == []


def test_the_tenants_email_rules_apply_to_replies(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """With the guardrail policy allowing e-mail to customer.example only, mail from
    another domain gets no reply proposed, and the reason is recorded."""
    inbox, port, _ = email_inbox
    db.execute(
        """INSERT INTO guardrail_policies (tenant_id, policy, updated_by) VALUES (%s, %s, 'test')
           ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy""",
        (tenant, Jsonb({"tools": {"email": {"allowed_external_domains": ["customer.example"]}}})),
    )
    try:
        outside = new_marker(8)
        message_id = _send(port, inbox, outside, sender="dave@other.example")
        finished = _finished(db, message_id)
        assert finished["status"] == "ignored"
        assert "I may not email other.example" in finished["error"]
        assert llm.requests(match=outside) == []
    finally:
        db.execute("DELETE FROM guardrail_policies WHERE tenant_id = %s", (tenant,))
