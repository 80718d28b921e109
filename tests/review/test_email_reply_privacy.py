"""A drafted email reply shows approvers the customer's personal data as the tenant's PII
policy says (partly masked by default, real when the policy says so), everywhere they
read it; the customer still gets the real name and address, also after an approver's edit.

The whole path over real sockets: SMTP into `chatops smtp`, the worker drafting, the card
and the Edit modal in the Slack emulator, and the reply delivered to a local SMTP server.
"""

from __future__ import annotations

import base64
import json
import smtplib
import time
from collections.abc import Iterator
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from sandbox.mail_sink import MailSink, SinkMessage
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.review.conftest import APPROVALS, APPROVER, DB, action_row, wait_for_status
from tests.review.emails import reply_waiting_for_approval
from tests.support.conversation import PLAN
from tests.support.processes import wait_for
from tests.support.stack import Stack

NAME = "Alice"  # the customer's first name: the mail is from "Alice Example"
MASKED_ADDRESS = "a***@customer.example"


@pytest.fixture
def policy(db: DB, tenant: int) -> Iterator[None]:
    """The tenant's default guardrail policy again after the test."""
    yield
    db.execute("DELETE FROM guardrail_policies WHERE tenant_id = %s", (tenant,))


def _email_in(
    llm: OpenAIEmulator, db: DB, inbox: tuple[str, int], marker: str
) -> tuple[dict[str, Any], str]:
    """An email from a customer (Alice Example, an address of their own, so no earlier
    test's mail counts towards the flood limits) about order `marker`; the reply waiting
    for approval, and the customer's address."""
    address, port = inbox
    customer = f"alice-{marker}@customer.example"
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"Sorry! Order {marker} ships tomorrow.", "citations": []}),
        match=marker,
    )
    message = EmailMessage()
    message["From"] = f"Alice Example <{customer}>"
    message["To"] = address
    message["Subject"] = f"Where is order {marker}?"
    message["Message-ID"] = f"<{marker}@customer.example>"
    message.set_content(f"Hello, my order {marker} has not arrived yet.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(customer, [address], message.as_bytes(policy=email_policy.SMTP))
    action = reply_waiting_for_approval(db, marker)
    return action, customer


def _delivered(mail_outbox: MailSink, marker: str) -> list[SinkMessage]:
    return [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")]


def _card(stack: Stack, action: dict[str, Any]) -> str:
    message = stack.slack.workspace.message(APPROVALS, action["approval_ts"])
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def test_reply_card_masks_the_customer_and_an_edit_keeps_the_real_name(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    inbox: tuple[str, int],
    mail_outbox: MailSink,
) -> None:
    """With the default policy (approvers see personal data partly masked) the card, the
    Edit modal and `/agent approvals` show a***@customer.example and "A.", never the
    customer's address or name, and nothing stored for the action holds them in clear (the
    email itself is sealed); an approver's edit that keeps the masked greeting is sent to the
    customer with the real name in it."""
    marker = f"ord{new_marker(8)}"
    # Given: an email from Alice Example, answered by the agent
    action, customer = _email_in(llm, db, inbox, marker)

    # Then: the card shows the customer partly masked, and the greeting by initial
    card = _card(stack, action)
    assert MASKED_ADDRESS in card and "Hello A.," in card
    assert customer not in card and NAME not in card
    assert f"Order {marker} ships tomorrow." in card
    # Nothing an approver reads or the audit log keeps holds the customer in clear.
    row = action_row(db, action["id"])
    readable = json.dumps(
        [row["summary"], row["reason"], row["payload"]["text"], row["shown"]], ensure_ascii=False
    )
    assert customer not in readable and NAME not in readable
    # The email that will be sent is stored sealed, opened only to send it.
    assert row["payload"]["sealed"] is True
    sealed = base64.b64decode(row["payload"]["message"])
    assert customer.encode() not in sealed and marker.encode() not in sealed
    audit = json.dumps(
        [
            [r["actor"], r["details"]]
            for r in db.execute(
                "SELECT actor, details FROM audit_log WHERE subject = %s",
                (f"action:{action['id']}",),
            )
        ]
    )
    assert customer not in audit and NAME not in audit

    # And: /agent approvals lists it as approvers may see it
    db.execute(
        "UPDATE pending_actions SET status = 'expired' WHERE tenant_id = %s"
        " AND status = 'pending' AND id < %s",
        (tenant, action["id"]),
    )
    approvals = stack.slack.run_slash_command(APPROVER, "C0GENERAL", "approvals").response
    assert approvals is not None
    listed = next(line for line in approvals["text"].splitlines() if marker in line)
    assert MASKED_ADDRESS in listed and customer not in approvals["text"]

    # When: the approver edits the text in the modal, keeping the masked greeting
    stack.slack.click_button(APPROVER, APPROVALS, action["approval_ts"], "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    field = next(b for b in view.blocks if b["type"] == "input")["element"]
    assert field["initial_value"].startswith("Hello A.,\n")
    assert customer not in json.dumps(view.blocks) and NAME not in json.dumps(view.blocks)
    edited = field["initial_value"].replace(
        f"Sorry! Order {marker} ships tomorrow.",
        f"Order {marker} left our warehouse today; it arrives on Friday.",
    )
    stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": edited}})
    wait_for(lambda: action_row(db, action["id"])["edited_by"], message="the edit saved")
    edited_card = wait_for(
        lambda: (c := _card(stack, action)) and "arrives on Friday" in c and c,
        message="the card showing the edit",
    )
    assert "Hello A.," in edited_card and NAME not in edited_card
    assert NAME not in action_row(db, action["id"])["payload"]["text"]
    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")

    # Then: the customer gets the edited text with their real name, once, to their address
    wait_for_status(db, action["id"], "executed", timeout=30)
    time.sleep(1)
    delivered = _delivered(mail_outbox, marker)
    assert len(delivered) == 1
    assert delivered[0].rcpt_tos == (customer,)
    body = delivered[0].parsed().get_content()
    assert body.startswith(f"Hello {NAME},")
    assert f"Order {marker} left our warehouse today; it arrives on Friday." in body
    assert "ships tomorrow" not in body and "A.," not in body and "<PERSON" not in body
    # The executed card, as every card, shows the customer masked.
    done = wait_for(
        lambda: (c := _card(stack, action)) and "Approved and done" in c and c,
        message="the card saying the reply was sent",
    )
    assert customer not in done and NAME not in done


def test_an_approver_who_types_a_new_name_sends_it_as_typed(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    inbox: tuple[str, int],
    mail_outbox: MailSink,
) -> None:
    """Where the approver replaces the masked greeting with a name of their own, the
    customer reads that name; the recipient stays the customer whatever the edit says."""
    marker = f"ord{new_marker(8)}"
    action, customer = _email_in(llm, db, inbox, marker)
    stack.slack.click_button(APPROVER, APPROVALS, action["approval_ts"], "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    field = next(b for b in view.blocks if b["type"] == "input")["element"]
    edited = field["initial_value"].replace("Hello A.,", "Dear Ms Example,")
    edited += "\n\nTo: someone@elsewhere.example"
    stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": edited}})
    wait_for(lambda: action_row(db, action["id"])["edited_by"], message="the edit saved")
    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    wait_for_status(db, action["id"], "executed", timeout=30)
    time.sleep(1)
    delivered = _delivered(mail_outbox, marker)
    assert len(delivered) == 1 and delivered[0].rcpt_tos == (customer,)
    body = delivered[0].parsed().get_content()
    assert body.startswith("Dear Ms Example,") and "Hello" not in body


def test_reply_card_shows_the_real_customer_when_approvers_see_real_values(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    inbox: tuple[str, int],
    policy: None,
) -> None:
    """With `pii.approver_view real` the card shows the customer's address and name as
    they are: the policy, not the channel, decides."""
    db.execute(
        """INSERT INTO guardrail_policies (tenant_id, policy, updated_by) VALUES (%s, %s, 'test')
           ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy""",
        (tenant, Jsonb({"pii": {"approver_view": "real"}})),
    )
    marker = f"ord{new_marker(8)}"
    action, customer = _email_in(llm, db, inbox, marker)
    card = _card(stack, action)
    assert customer in card and f"Hello {NAME}," in card
    assert MASKED_ADDRESS not in card
    # Left decided, so no later test lists it among the pending approvals.
    db.execute("UPDATE pending_actions SET status = 'rejected' WHERE id = %s", (action["id"],))
