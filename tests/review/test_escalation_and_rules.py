"""Approvals nobody decides reach a second group; "Approve & always allow" makes a rule
that lets the next action like it run without a card decision, until it is revoked."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from connectors.slack.web_client import make_web_client
from review.sweep import sweep
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Message, UserGroup
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    SUPPORT,
    action_row,
    audit_actions,
    posts_in_support,
    propose_post,
    wait_for_status,
)
from tests.review.emails import (
    allow_email_to_customers,
    ask_for_a_renewal_email,
    renewal_email_waiting_for_approval,
)
from tests.support.channels import ADMIN, admin_command
from tests.support.conversation import (
    GENERAL,
    REQUESTER,
    bot_replies,
    mention,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack

ALWAYS = "review_approve_always"


def card_text(message: Message) -> str:
    """Every text a person reads on a card, block after block."""
    return json.dumps(message.blocks, ensure_ascii=False)


def buttons(message: Message) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def card(stack: Stack, ts: str) -> Message:
    return stack.slack.workspace.message(APPROVALS, ts)


def ask_for_post(stack: Stack, llm: OpenAIEmulator, text: str) -> tuple[str, str]:
    """The requester asks for a post in #support; the bot's answer and the request's ts."""
    question = unique_question(f"Announce in #support: {text}")
    call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": text},
        "reason": "The requester asked to tell the support team.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "I'll post that.", "citations": []}),
        match=question,
    )
    post = mention(stack.slack, question)
    return wait_for_answer(stack.slack, post.message.ts).text, post.message.ts


def action_for(db: DB, text: str) -> dict[str, Any]:
    return wait_for(
        lambda: db.execute(
            "SELECT * FROM pending_actions WHERE payload->>'text' = %s ORDER BY id DESC LIMIT 1",
            (text,),
        ).fetchone(),
        message=f"the action posting {text!r}",
    )


def live_rules(db: DB, tenant: int) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT * FROM action_rules WHERE tenant_id = %s AND revoked_at IS NULL
           AND expires_at > now() ORDER BY number""",
        (tenant,),
    ).fetchall()


def test_an_undecided_action_is_escalated_once_to_the_second_group(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, worker_conn
) -> None:  # type: ignore[no-untyped-def]
    """With `/agent escalate @group after 1h`, an action still undecided when the clock
    passes the hour gets one note under its card mentioning the group and how long it
    waited, the card says so, and from then on a member of the group (not an approver)
    may approve it; before, their approval was not counted."""
    group = UserGroup(f"S0ESC{new_marker(6).upper()}", "oncall-leads", "On-call", [ADMIN])
    stack.slack.workspace.add_usergroup(group)

    # Given escalation to the group after an hour, set by an admin
    assert "No escalation is set" in admin_command(stack.slack, GENERAL, "escalate")
    usage = admin_command(stack.slack, GENERAL, f"escalate <!subteam^{group.id}|@oncall> soon")
    assert "Usage" in usage
    too_late = admin_command(stack.slack, GENERAL, f"escalate <!subteam^{group.id}> after 2d")
    assert "would never happen" in too_late
    reply = admin_command(stack.slack, GENERAL, f"escalate <!subteam^{group.id}|@oncall> after 1h")
    assert f"within 1 hour will be escalated to <!subteam^{group.id}>" in reply
    assert "settings.escalation" in [
        r["action"]
        for r in db.execute(
            "SELECT action FROM audit_log WHERE tenant_id = %s AND actor = %s ORDER BY id DESC LIMIT 1",
            (tenant, ADMIN),
        )
    ]
    text = f"Escalated announcement ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    action_id = proposal.action["id"]

    # Before the hour, the group's member is not one of the approvers
    stack.slack.click_button(ADMIN, APPROVALS, proposal.approval.ts, "review_approve")
    wait_for(lambda: "action.decision_ignored" in audit_actions(db, action_id))
    assert action_row(db, action_id)["status"] == "pending"

    def client(token: str):  # type: ignore[no-untyped-def]
        return make_web_client(token, stack.slack.api_url)

    # When the sweep runs with the clock a minute short of the hour, then past it
    created = action_row(db, action_id)["created_at"]
    sweep(worker_conn, client, lambda _: None, now=created + timedelta(minutes=59))
    assert action_row(db, action_id)["escalated_at"] is None
    report = sweep(worker_conn, client, lambda _: None, now=created + timedelta(minutes=61))
    sweep(worker_conn, client, lambda _: None, now=created + timedelta(minutes=90))

    # Then one note under the card calls the group in, saying how long it has waited
    assert report.escalated >= 1
    notes = [
        m.text
        for m in stack.slack.thread(APPROVALS, proposal.approval.ts)
        if f"<!subteam^{group.id}>" in m.text
    ]
    assert len(notes) == 1 and "waited 1 hour 1 minute" in notes[0]
    shown = card_text(card(stack, proposal.approval.ts))
    assert f"Escalated to <!subteam^{group.id}> after 1 hour 1 minute" in shown
    assert audit_actions(db, action_id).count("action.escalated") == 1

    # And the group's member may now approve it: it runs once
    stack.slack.click_button(ADMIN, APPROVALS, proposal.approval.ts, "review_approve")
    row = wait_for_status(db, action_id, "executed")
    assert row["decided_by"] == ADMIN
    assert len(posts_in_support(stack.slack, text)) == 1

    assert "escalated to" in admin_command(stack.slack, GENERAL, "escalate")
    assert "Escalation is off" in admin_command(stack.slack, GENERAL, "escalate off")


def test_a_rule_made_from_a_card_runs_the_next_matching_action_until_revoked(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """An approver's "Approve & always allow" runs the action and makes a rule; the next
    post the same requester asks for runs at once, its card saying which rule allowed it
    and who set it; once an admin revokes the rule, the next one waits for approval."""
    first = f"Rule-making announcement ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, first)
    assert ALWAYS in buttons(proposal.approval)

    # When the approver approves and always allows
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, ALWAYS)

    # Then it runs, and a rule for this tool and requester lasts the default 30 days
    wait_for_status(db, proposal.action["id"], "executed")
    rules = wait_for(lambda: live_rules(db, tenant))
    assert len(rules) == 1
    rule = rules[0]
    assert (rule["tool"], rule["requester"], rule["created_by"]) == (
        "post_to_channel",
        REQUESTER,
        APPROVER,
    )
    assert (
        timedelta(days=29, hours=23)
        < rule["expires_at"] - rule["created_at"]
        <= timedelta(days=30, minutes=1)
    )
    until = f"{rule['expires_at']:%-d %B %Y}"
    note = wait_for(
        lambda: [
            m.text
            for m in stack.slack.thread(APPROVALS, proposal.approval.ts)
            if "from now on" in m.text
        ]
    )
    assert f"rule {rule['number']}, posting in a channel for <@{REQUESTER}>'s requests" in note[0]
    assert f"`/agent rules revoke {rule['number']}`" in note[0]

    # When the same requester asks for another post
    second = f"Allowed by the rule ({new_marker(6)})"
    _, asked = ask_for_post(stack, llm, second)

    # Then it runs without anyone deciding, once, and its card names the rule
    action = action_for(db, second)
    row = wait_for_status(db, action["id"], "executed")
    assert row["decided_by"] is None and row["allowed_by_rule"] == rule["id"]
    assert len(posts_in_support(stack.slack, second)) == 1
    words = (
        f"the rule 'posting in a channel for <@{REQUESTER}>'s requests, until {until}', "
        f"set by <@{APPROVER}>"
    )
    # The thread names the rule: "Allowed by …" in the answer, which the outcome notice
    # ("Approved by … and done") may follow or replace a moment later.
    wait_for(
        lambda: any(words in m.text for m in bot_replies(stack.slack, asked)),
        message="the thread naming the rule",
    )
    shown = wait_for(
        lambda: (t := card_text(card(stack, row["approval_ts"]))) and "and done" in t and t
    )
    assert f"Approved by {words} and done" in shown
    assert not buttons(card(stack, row["approval_ts"]))
    assert "action.approved_by_rule" in audit_actions(db, action["id"])

    # `/agent rules` lists it for anyone of the workspace, by its number
    listed = stack.slack.run_slash_command(REQUESTER, GENERAL, "rules").response
    assert listed is not None
    assert (
        f"*{rule['number']}*: posting in a channel for <@{REQUESTER}>'s requests" in listed["text"]
    )
    refused = stack.slack.run_slash_command(REQUESTER, GENERAL, f"rules revoke {rule['number']}")
    assert refused.response is not None and "Only workspace admins" in refused.response["text"]

    # When an admin revokes it
    revoked = admin_command(stack.slack, GENERAL, f"rules revoke {rule['number']}")
    assert f"Rule {rule['number']}" in revoked and "revoked" in revoked
    assert live_rules(db, tenant) == []
    assert f"There is no rule {rule['number']}" in admin_command(
        stack.slack, GENERAL, f"rules revoke {rule['number']}"
    )

    # Then the next such post waits for a person again
    third = f"After the revocation ({new_marker(6)})"
    again = propose_post(stack.slack, llm, db, third)
    assert action_row(db, again.action["id"])["status"] == "pending"
    assert posts_in_support(stack.slack, third) == []
    audited = [
        r["action"]
        for r in db.execute(
            "SELECT action FROM audit_log WHERE tenant_id = %s AND subject = %s ORDER BY id",
            (tenant, f"rule:{rule['number']}"),
        )
    ]
    assert audited == ["rule.created", "rule.revoked"]


def test_an_always_review_tool_gets_no_rule_button_and_no_rule_covers_it(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Once the tenant policy lists post_to_channel as always-review, its cards have no
    "Approve & always allow", and even a rule already made for it does not approve it."""
    db.execute(
        """INSERT INTO action_rules (tenant_id, number, tool, requester, created_by, expires_at)
           SELECT %s, coalesce(max(number), 0) + 1, 'post_to_channel', %s, %s,
                  now() + interval '30 days'
           FROM action_rules WHERE tenant_id = %s""",
        (tenant, REQUESTER, APPROVER, tenant),
    )
    reply = admin_command(stack.slack, GENERAL, "policy set tools.always_review post_to_channel")
    assert "`tools.always_review` is now `post_to_channel`" in reply
    try:
        text = f"Always reviewed ({new_marker(6)})"
        proposal = propose_post(stack.slack, llm, db, text)
        assert ALWAYS not in buttons(proposal.approval)
        assert "review_approve" in buttons(proposal.approval)
        assert action_row(db, proposal.action["id"])["allowed_by_rule"] is None
        assert posts_in_support(stack.slack, text) == []
    finally:
        admin_command(stack.slack, GENERAL, "policy set tools.always_review default")


def test_someone_who_may_not_approve_cannot_make_a_rule(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """ "Approve & always allow" from someone who is not an approver is not counted: no
    rule, nothing runs, and the card says their click did not count."""
    text = f"Not the requester's rule to make ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    stack.slack.click_button(REQUESTER, APPROVALS, proposal.approval.ts, ALWAYS)
    wait_for(lambda: "action.decision_ignored" in audit_actions(db, proposal.action["id"]))
    assert live_rules(db, tenant) == []
    assert action_row(db, proposal.action["id"])["status"] == "pending"
    shown = wait_for(
        lambda: (t := card_text(card(stack, proposal.approval.ts))) and "Not counted" in t and t
    )
    assert f"✅ always allow from <@{REQUESTER}> (not an approver)" in shown
    assert posts_in_support(stack.slack, text) == []


def test_an_email_rule_covers_a_recipient_domain_not_a_requester(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, inbox: tuple[str, int], mail_outbox
) -> None:  # type: ignore[no-untyped-def]
    """ "Approve & always allow" on an email makes a rule for email to its recipients'
    domain (read from the real address, though the model only saw a placeholder): a later
    email to someone else at that domain is sent without a card decision; the rule is
    listed by domain."""
    allow_email_to_customers(db, tenant)

    def ask_to_email(address: str) -> tuple[str, dict[str, Any]]:
        marker = new_marker(8)
        text = f"Hello, your renewal {marker} is due in May."
        ask_for_a_renewal_email(
            stack, llm, address, marker, text=text, answer="I drafted the email."
        )
        return marker, renewal_email_waiting_for_approval(db, marker)

    # Given an approver's "Approve & always allow" on an email to alice@customer.example
    _, first = ask_to_email("alice@customer.example")
    assert first["recipient_domains"] == ["customer.example"]
    stack.slack.click_button(APPROVER, APPROVALS, first["approval_ts"], ALWAYS)
    wait_for_status(db, first["id"], "executed")
    (rule,) = wait_for(lambda: live_rules(db, tenant))
    assert (rule["tool"], rule["recipient_domain"], rule["requester"]) == (
        "send_email",
        "customer.example",
        None,
    )

    # When the agent proposes an email to bob@customer.example
    marker, second = ask_to_email("bob@customer.example")

    # Then it is sent once without anyone deciding, and its card names the rule
    row = wait_for_status(db, second["id"], "executed")
    assert row["allowed_by_rule"] == rule["id"]
    sent = mail_outbox.wait_for(2)
    assert [m.rcpt_tos for m in sent if marker in m.data.decode(errors="replace")] == [
        ("bob@customer.example",)
    ]
    shown = wait_for(
        lambda: (t := card_text(card(stack, row["approval_ts"]))) and "and done" in t and t
    )
    assert "Approved by the rule 'sending email to anyone at customer.example, until" in shown
    listed = admin_command(stack.slack, GENERAL, "rules")
    assert f"*{rule['number']}*: sending email to anyone at customer.example" in listed
