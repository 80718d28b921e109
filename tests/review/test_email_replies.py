"""An email to the agent inbox gets a reply in the same email thread, after approval.

The whole path over real sockets: SMTP into `chatops smtp`, the worker drafting, the
approval in Slack by reaction, and the reply delivered to a local SMTP server.
"""

from __future__ import annotations

import json
import smtplib
import time

from sandbox.mail_sink import MailSink
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.review.conftest import APPROVALS, APPROVER, DB, action_row, wait_for_status
from tests.review.emails import reply_waiting_for_approval
from tests.support.conversation import PLAN
from tests.support.processes import wait_for
from tests.support.stack import Stack


def test_email_reply_is_sent_once_after_approval_in_the_same_thread(
    stack: Stack, llm: OpenAIEmulator, db: DB, inbox: tuple[str, int], mail_outbox: MailSink
) -> None:
    """The drafted reply waits in #approvals; after ✅ it arrives once, threaded to the
    customer's message, from the inbox it was sent to."""
    address, port = inbox
    marker = new_marker(8)
    body = f"Hello, my order #{marker} has not arrived yet."
    message_id = f"<{marker}@customer.example>"
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"Sorry! Order #{marker} ships tomorrow.", "citations": []}),
        match=marker,
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(CUSTOMER, [address], mail(address, body=body, message_id=message_id))

    action = reply_waiting_for_approval(db, marker)
    card = stack.slack.workspace.message(APPROVALS, action["approval_ts"])
    # The customer as approvers see them by default (tests/review/test_email_reply_privacy.py).
    assert "a***@customer.example" in card.text and "Re: Where is my order?" in card.text
    assert [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")] == []

    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    done = wait_for_status(db, action["id"], "executed", timeout=30)
    # The inbox's reply has no thread conversation to continue: its run does not resume.
    assert done["resume_due_at"] is None
    time.sleep(1)
    delivered = [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")]
    assert len(delivered) == 1
    reply = delivered[0].parsed()
    assert reply["In-Reply-To"] == message_id
    assert message_id in reply["References"]
    assert reply["Subject"] == "Re: Where is my order?"
    assert reply["From"].addresses[0].addr_spec == address
    assert delivered[0].rcpt_tos == (CUSTOMER,)
    assert f"Order #{marker} ships tomorrow." in reply.get_content()
    assert action_row(db, action["id"])["result"]["status"] == "sent"


def _ask_to_send(stack: Stack, llm: OpenAIEmulator, to: str, marker: str) -> str:
    """Ask the bot, in Slack, to email `to`; the model answers with a send_email call to the
    placeholder it was shown instead of the address."""
    from tests.support.conversation import mention, wait_for_answer

    call = {
        "name": "send_email",
        "arguments": {"to": ["<EMAIL_1>"], "subject": f"Renewal {marker}", "text": f"Hi! {marker}"},
        "reason": "The requester asked to email <EMAIL_1>.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "Done what I could.", "citations": []}),
        match=marker,
    )
    post = mention(stack.slack, f"Email {to} about the renewal {marker}")
    wait_for_answer(stack.slack, post.message.ts)
    sent_to_model = json.dumps(llm.requests(match=marker))
    assert to not in sent_to_model, "the address reached the model unredacted"
    return marker


def test_send_email_to_an_allowed_domain_is_sent_once_after_approval(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    inbox: tuple[str, int],
    mail_outbox: MailSink,
) -> None:
    """The agent's new email to an allowed domain waits for ✅, then arrives once from the
    inbox; the approver sees the address partly masked (the tenant's default view), neither
    the model's placeholder nor the whole address."""
    address, _ = inbox
    db.execute(
        "INSERT INTO tenant_email_allowlist (tenant_id, domain) VALUES (%s, 'customer.example')"
        " ON CONFLICT DO NOTHING",
        (tenant,),
    )
    marker = new_marker(8)
    _ask_to_send(stack, llm, CUSTOMER, marker)
    action = wait_for(
        lambda: db.execute(
            "SELECT * FROM pending_actions WHERE tool = 'send_email' AND payload->>'subject' = %s"
            " AND approval_ts IS NOT NULL",
            (f"Renewal {marker}",),
        ).fetchone()
    )
    card = json.dumps(stack.slack.workspace.message(APPROVALS, action["approval_ts"]).blocks)
    assert "a***@customer.example" in card
    assert "<EMAIL_1>" not in card and CUSTOMER not in card
    # The model's reason, naming the customer by placeholder, is shown the same way.
    assert "asked to email a***@customer.example" in card
    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    wait_for_status(db, action["id"], "executed", timeout=30)
    time.sleep(1)
    delivered = [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")]
    assert len(delivered) == 1
    assert delivered[0].rcpt_tos == (CUSTOMER,)
    for process in (stack.worker, stack.serve):
        assert CUSTOMER not in process.log_text(), "raw personal data reached the logs"
    sender = delivered[0].parsed()["From"].addresses[0].addr_spec
    inboxes = {
        r["address"]
        for r in db.execute("SELECT address FROM tenant_inboxes WHERE tenant_id = %s", (tenant,))
    }
    assert address in inboxes and sender in inboxes


def test_send_email_outside_the_allowlist_is_refused_before_approval(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, inbox: tuple[str, int]
) -> None:
    """A recipient in a domain the tenant does not allow is refused; nothing waits for approval,
    and the model is told why."""
    marker = new_marker(8)
    question = _ask_to_send(stack, llm, "someone@elsewhere.example", marker)
    assert db.execute(
        "SELECT count(*) AS n FROM pending_actions WHERE tool = 'send_email' AND payload->>'subject' = %s",
        (f"Renewal {marker}",),
    ).fetchone() == {"n": 0}
    draft_prompt = json.dumps(llm.requests(match=question)[-1]["messages"])
    assert "does not allow new email to" in draft_prompt
