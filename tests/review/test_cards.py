"""What approvers and requesters read: cards, the requester's thread, the Edit modal and
`/agent approvals`, as the Slack emulator stores them, and the email as the mail sink
receives it.

Real serve, worker and `chatops smtp` processes; the model is the scripted emulator,
which (like a real model) only ever sees personal data as placeholders.
"""

from __future__ import annotations

import json
import re
import smtplib
import time
from typing import Any

from sandbox.mail_sink import MailSink
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Message
from testbed.markers import new_marker
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    REQUESTER,
    action_row,
    propose_post,
    thread_texts,
    wait_for_status,
)
from tests.review.emails import (
    allow_email_to_customers,
    ask_for_a_renewal_email,
    renewal_email_waiting_for_approval,
    reply_waiting_for_approval,
)
from tests.support.conversation import PLAN
from tests.support.processes import wait_for
from tests.support.stack import Stack

MASKED = "a***@customer.example"  # the tenant's default approver view of CUSTOMER
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{60,}")
PROMPTS = {"white_check_mark", "pencil2", "x"}


def plain_sections(message: Message) -> list[dict[str, Any]]:
    """The card's plain-text sections: an email's body, shown exactly as sent."""
    return [
        b
        for b in message.blocks or []
        if b["type"] == "section" and b.get("text", {}).get("type") == "plain_text"
    ]


def readable(blocks: Any) -> str:
    """Every text of blocks (a card, a modal) as one string."""
    return json.dumps(blocks, ensure_ascii=False)


def assert_nothing_internal(text: str) -> None:
    assert "<EMAIL" not in text and "EMAIL_1" not in text, text
    assert "conversation_id" not in text and "['" not in text, text
    assert BASE64_RUN.search(text) is None, text


def bot_user(stack: Stack) -> str:
    return stack.slack.workspace.app.bot_user_id


def reactions(message: Message) -> dict[str, list[str]]:
    return {r.name: list(r.users) for r in message.reactions}


def test_a_send_email_card_reads_as_the_email_and_personal_data_is_masked_everywhere(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    inbox: tuple[str, int],
    mail_outbox: MailSink,
) -> None:
    """The model names the customer only as <EMAIL_1>. The card shows the email (From,
    To, Subject, body) with the address masked per the tenant's approver view; the
    requester's thread, `/agent approvals` and the Edit modal show it the same way. An
    edit typed over the masked text still sends to the real address. A non-approver's ✅
    is shown as not counted; once approved, the card says who and what happened, its
    buttons and the bot's own prompt reactions are gone."""
    allow_email_to_customers(db, tenant)
    marker = new_marker(8)
    post = ask_for_a_renewal_email(
        stack,
        llm,
        CUSTOMER,
        marker,
        text=f"Hi <EMAIL_1>, your renewal {marker} is due in May.",
        answer="I drafted the email; it waits for approval.",
    )
    action = renewal_email_waiting_for_approval(db, marker)
    ts = action["approval_ts"]

    # The card: the email as its recipient will read it, nothing internal.
    card = stack.slack.workspace.message(APPROVALS, ts)
    shown = readable(card.blocks) + card.text
    assert_nothing_internal(shown)
    assert CUSTOMER not in shown
    # A new email leaves from the tenant's first inbox (not always this test's own: an
    # earlier test in the session may have added one before it).
    first = db.execute(
        """SELECT address FROM tenant_inboxes WHERE tenant_id = %s AND kind = 'address'
           ORDER BY id LIMIT 1""",
        (tenant,),
    ).fetchone()
    assert first is not None
    assert f"*From:* {first['address']}" in shown
    assert f"*To:* {MASKED}" in shown
    assert f"*Subject:* Renewal {marker}" in shown
    (body,) = plain_sections(card)
    assert body["text"]["text"] == f"Hi {MASKED}, your renewal {marker} is due in May."
    assert reactions(card) == {name: [bot_user(stack)] for name in PROMPTS}

    # The requester's thread and `/agent approvals`: the same masked address.
    waiting = wait_for(
        lambda: next(
            (t for t in thread_texts(stack.slack, post.message.ts) if "Waiting for approval" in t),
            None,
        )
    )
    assert MASKED in waiting and "EMAIL" not in waiting
    listed = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", "approvals").response
    assert listed is not None
    line = next(x for x in listed["text"].splitlines() if marker in x)
    assert MASKED in line and "EMAIL" not in line and f"<@{REQUESTER}>" in line

    # The Edit modal: masked text to edit; the edit keeps the placeholder underneath.
    stack.slack.click_button(APPROVER, APPROVALS, ts, "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    modal = readable(view.definition)
    assert_nothing_internal(modal)
    assert MASKED in modal and CUSTOMER not in modal
    stack.slack.submit_view(
        APPROVER,
        view.id,
        {"edited_text": {"text": f"Hello {MASKED}, renewal {marker} is in June."}},
    )
    edited = wait_for(lambda: (r := action_row(db, action["id"]))["edited_by"] and r)
    assert edited["payload"]["text"] == f"Hello <EMAIL_1>, renewal {marker} is in June."

    # A ✅ from someone who may not approve shows on the card as not counted.
    stack.slack.react_as_user(REQUESTER, APPROVALS, ts, "white_check_mark")
    wait_for(
        lambda: (
            (m := stack.slack.workspace.message(APPROVALS, ts))
            and "Not counted" in readable(m.blocks)
            and m
        ),
        message="the card saying the ✅ was not counted",
    )
    card = stack.slack.workspace.message(APPROVALS, ts)
    assert f"✅ from <@{REQUESTER}> (not an approver)" in readable(card.blocks)
    assert action_row(db, action["id"])["status"] == "pending"

    stack.slack.react_as_user(APPROVER, APPROVALS, ts, "white_check_mark")
    wait_for_status(db, action["id"], "executed", timeout=30)
    # The card is refreshed once the email is sent, just after the action is recorded.
    wait_for(
        lambda: (
            (m := stack.slack.workspace.message(APPROVALS, ts))
            and bot_user(stack) not in str(reactions(m))
            and "and done" in readable(m.blocks)
        ),
        message="the decided card, without the bot's prompt reactions",
    )
    card = stack.slack.workspace.message(APPROVALS, ts)
    shown = readable(card.blocks)
    assert f"Approved by <@{APPROVER}> and done as edited: the email was sent" in shown
    assert "Not counted" not in shown
    assert not [b for b in card.blocks or [] if b["type"] == "actions"]
    assert reactions(card) == {"white_check_mark": [REQUESTER, APPROVER]}
    done = wait_for(
        lambda: next(
            (t for t in thread_texts(stack.slack, post.message.ts) if "and done" in t), None
        )
    )
    assert MASKED in done and "EMAIL" not in done
    time.sleep(1)
    (sent,) = [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")]
    assert sent.rcpt_tos == (CUSTOMER,)
    assert sent.parsed().get_content().strip() == f"Hello {CUSTOMER}, renewal {marker} is in June."


def test_a_reply_email_card_shows_the_plain_text_email_the_customer_will_get(
    stack: Stack, llm: OpenAIEmulator, db: DB, inbox: tuple[str, int], mail_outbox: MailSink
) -> None:
    """Mail to the inbox: the card shows From, To, Subject and the body as the customer
    reads it: plain text (no mrkdwn), a greeting and a sign-off, no base64 MIME and no
    conversation id, with addresses and names as approvers see them by default (partly
    masked); what is sent is that same text with the customer's real name."""
    address, port = inbox
    marker = new_marker(8)
    llm.script(
        Reply(content=PLAN),
        Reply(
            content={
                "answer": f"Sorry! *Order {marker}* ships _tomorrow_ :truck:.",
                "citations": [],
            }
        ),
        match=marker,
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(
            CUSTOMER, [address], mail(address, body=f"Hello, my order {marker} is late.")
        )
    action = reply_waiting_for_approval(db, marker)
    card = stack.slack.workspace.message(APPROVALS, action["approval_ts"])
    shown = readable(card.blocks) + card.text
    assert_nothing_internal(shown)
    assert f"*From:* {address}" in shown  # the tenant's own inbox: not personal data
    assert f"*To:* A. E. &lt;{MASKED}&gt;" in shown
    assert "*Subject:* Re: Where is my order?" in shown
    assert f"*Requested by* {MASKED}" in shown  # an email sender, not a dead @mention
    assert CUSTOMER not in shown and "Alice" not in shown
    (body,) = plain_sections(card)
    text = body["text"]["text"]
    assert text.startswith("Hello A.,\n\n")
    assert f"Sorry! Order {marker} ships tomorrow." in text
    assert "*" not in text and "_tomorrow_" not in text and ":truck:" not in text
    assert re.search(r"\n\nBest regards,\nThe .+ team$", text), text

    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    wait_for_status(db, action["id"], "executed", timeout=30)
    time.sleep(1)
    (sent,) = [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")]
    sent_text = sent.parsed().get_content().replace("\r\n", "\n").strip()
    assert sent_text == text.replace("Hello A.,", "Hello Alice,", 1)


def test_a_rejection_by_reaction_offers_the_rejecter_a_reason_form(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """❌ cannot open a form, so whoever rejected is offered "Add a reason", privately;
    the reason given there reaches the requester's thread and the card."""
    text = f"Free pizza for everyone ({new_marker(6)})"
    reason = f"Only on Fridays ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.react_as_user(APPROVER, APPROVALS, proposal.approval.ts, "x")
    wait_for_status(db, proposal.action["id"], "rejected")
    note = wait_for(
        lambda: next(
            (
                m
                for m in stack.slack.workspace.ephemeral_messages(APPROVER)
                if m.channel == APPROVALS
                and "Add a reason" in readable(m.blocks)
                and f'"value": "{proposal.action["id"]}"' in readable(m.blocks)
            ),
            None,
        ),
        message="the private offer to add a reason",
    )
    stack.slack.click_button(APPROVER, APPROVALS, note.ts, "review_add_reason")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the reason modal")
    stack.slack.submit_view(APPROVER, view.id, {"reject_reason": {"text": reason}})
    wait_for(
        lambda: any(reason in t for t in thread_texts(stack.slack, proposal.thread_ts)),
        message="the reason in the requester's thread",
    )
    card = stack.slack.workspace.message(APPROVALS, proposal.approval.ts)
    assert f"Reason: {reason}" in readable(card.blocks)
    assert reactions(card) == {"x": [APPROVER]}
