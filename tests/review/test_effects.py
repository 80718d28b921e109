"""Approvals at a glance: a card shows the effect read from the system just before it was
posted, execution stops when that is no longer so, and an approval counts only for the
version its card showed.

Real serve and worker processes, Postgres, Redis, the Slack emulator and the HubSpot
emulator the worker calls; the model is the scripted emulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.credentials import Credential, CredentialStore, cipher_from_settings
from connectors.slack.web_client import make_web_client
from core.db import open_pool
from core.settings import load_settings
from review import tenant_settings
from review.decisions import Decision, apply_decision
from sandbox.hubspot_api import HubSpotEmulator
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Message
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.conftest import HUBSPOT_TOKEN
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    action_row,
    posts_in_support,
    propose_post,
    thread_texts,
    wait_for_status,
)
from tests.support.conversation import mention, unique_question, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack


@pytest.fixture
def hubspot(
    stack: Stack, hubspot_for_stack: HubSpotEmulator, database_url: str, tenant: int
) -> Iterator[HubSpotEmulator]:
    """The stack's HubSpot, connected by the sandbox tenant (as `/agent connect hubspot`)."""
    settings = load_settings(
        database_url=database_url, slack_signing_secret=stack.slack.signing_secret
    )
    pool = open_pool(database_url, max_size=1)
    try:
        CredentialStore(pool, cipher_from_settings(settings)).store(
            tenant, "hubspot", Credential(HUBSPOT_TOKEN, None), actor="U0ADMIN"
        )
    finally:
        pool.close()
    hubspot_for_stack.reset()
    yield hubspot_for_stack


def propose_stage(
    stack: Stack, llm: OpenAIEmulator, db: DB, deal_id: str, stage: str
) -> tuple[dict[str, Any], Message, str]:
    """Ask the bot to move a deal; the pending action, its card and the asking thread."""
    question = unique_question(f"Move deal {deal_id} to {stage}")
    call = {
        "name": "hubspot_update_deal_stage",
        "arguments": {"deal_id": deal_id, "stage": stage},
        "reason": "The requester says the contract was signed.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "I'll move it once it is approved.", "citations": []}),
        match=question,
    )
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)
    assert "Waiting for approval" in answer.text
    action = wait_for(
        lambda: db.execute(
            """SELECT a.* FROM pending_actions a JOIN agent_runs r ON r.id = a.run_id
               JOIN inbound_requests q ON q.id = r.request_id
               WHERE q.external_id = %s AND a.approval_ts IS NOT NULL""",
            (post.deliveries[0].event_id,),
        ).fetchone()
    )
    card = stack.slack.workspace.message(APPROVALS, action["approval_ts"])
    return action, card, post.message.ts


def read_by_people(card: Message) -> str:
    """What people read on a card: every block but the buttons' hidden values."""
    return json.dumps([b for b in card.blocks or [] if b["type"] != "actions"], ensure_ascii=False)


def approve_button_value(card: Message) -> str:
    buttons = next(b for b in card.blocks or [] if b["type"] == "actions")["elements"]
    return str(next(b for b in buttons if b["action_id"] == "review_approve")["value"])


def test_a_deal_stage_card_shows_the_stage_before_and_after(
    stack: Stack, llm: OpenAIEmulator, db: DB, hubspot: HubSpotEmulator
) -> None:
    """The card of a stage change names the deal and reads "Stage: Contract sent → Closed
    won", read from HubSpot before the card was posted; no record ids, no hashes."""
    deal = hubspot.crm.add(
        "deals",
        {"dealname": f"Initech renewal {new_marker(4)}", "dealstage": "contractsent"},
    )

    action, card, _ = propose_stage(stack, llm, db, deal.id, "closedwon")

    shown = read_by_people(card)
    assert f"*Deal: {deal.properties['dealname']}*\\nStage: Contract sent → Closed won" in shown
    assert "Move a HubSpot deal to Closed won" in shown
    # The id as a number of its own: "101" also turns up inside a message link's timestamp.
    assert not re.search(rf"(?<!\d){deal.id}(?!\d)", shown) and "closedwon" not in shown
    assert action["shown_hash"][:16] not in shown
    assert [r.method for r in hubspot.requests] == ["GET"]  # read, nothing changed yet


def test_a_stage_changed_before_approval_stops_execution(
    stack: Stack, llm: OpenAIEmulator, db: DB, hubspot: HubSpotEmulator
) -> None:
    """If the deal moved after its card was posted, approving the card changes nothing:
    the action fails saying what changed, on the card and in the requester's thread."""
    deal = hubspot.crm.add("deals", {"dealname": "Hooli expansion", "dealstage": "contractsent"})
    action, card, thread_ts = propose_stage(stack, llm, db, deal.id, "closedwon")
    # Given someone moves the deal in HubSpot meanwhile
    hubspot.crm.update("deals", deal.id, {"dealstage": "decisionmakerboughtin"})

    # When the approver approves the card as it was posted
    stack.slack.click_button(APPROVER, APPROVALS, card.ts, "review_approve")

    # Then nothing is changed, and everyone reads why
    failed = wait_for_status(db, action["id"], "failed")
    reason = (
        "The deal's stage changed from Contract sent to Decision maker bought-in after this "
        "card was posted; nothing was changed. Ask again if it is still wanted."
    )
    assert failed["error"] == reason
    assert hubspot.crm.get("deals", deal.id).properties["dealstage"] == "decisionmakerboughtin"
    assert "PATCH" not in {r.method for r in hubspot.requests}
    updated = wait_for(
        lambda: (
            (m := stack.slack.workspace.message(APPROVALS, card.ts))
            and "stopped" in read_by_people(m)
            and m
        ),
        message="the card to say it was stopped",
    )
    assert reason in read_by_people(updated)
    wait_for(
        lambda: any(reason in t for t in thread_texts(stack.slack, thread_ts)),
        message="the requester's thread to hear why",
    )


def test_an_approval_counts_only_for_the_version_its_card_showed(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """An edit makes version 2; a click on a copy of the card from before the edit is
    refused with a reason, the latest version is approved and runs once as edited, and
    the audit log records which version was approved."""
    text = f"Draft from the agent ({new_marker(6)})"
    edited = f"Better words from the approver ({new_marker(6)})"
    proposal = propose_post(stack.slack, llm, db, text)
    old_copy = approve_button_value(proposal.approval)

    # Given the approver edits the text
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": edited}})
    row = wait_for(lambda: (r := action_row(db, proposal.action["id"]))["version"] == 2 and r)
    card = wait_for(
        lambda: (
            (m := stack.slack.workspace.message(APPROVALS, proposal.approval.ts))
            and "(version 2)" in read_by_people(m)
            and m
        ),
        message="the card to show the edited version",
    )
    assert row["shown_hash"] != proposal.action["shown_hash"]
    assert row["shown_hash"][:16] not in read_by_people(card)

    # When a click arrives from a copy of the card from before the edit
    stack.slack.click_button(
        APPROVER, APPROVALS, proposal.approval.ts, "review_approve", value=old_copy
    )

    # Then it approves nothing, and the clicker is told why
    wait_for(
        lambda: any(
            "Not approved" in m.text and "edited since" in m.text
            for m in stack.slack.workspace.ephemeral_messages(APPROVER)
        ),
        message="the refusal, told privately",
    )
    assert action_row(db, proposal.action["id"])["status"] == "pending"

    # When the latest card is approved, the edited text runs once
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_approve")
    done = wait_for_status(db, proposal.action["id"], "executed")
    assert len(posts_in_support(stack.slack, edited)) == 1
    assert posts_in_support(stack.slack, text) == []
    assert done["approved_version"] == 2 and done["approved_hash"] == row["shown_hash"]
    approved = db.execute(
        """SELECT details FROM audit_log WHERE subject = %s AND action = 'action.approved'""",
        (f"action:{proposal.action['id']}",),
    ).fetchall()
    assert [a["details"]["version"] for a in approved] == [2]
    assert approved[0]["details"]["hash"] == row["shown_hash"]


def test_a_check_mark_added_before_an_edit_does_not_approve_it(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, worker_conn: DB
) -> None:
    """A ✅ the listener received before the last edit was saved (its job ran after the
    edit) approves nothing: its author is told to add it again for the edited version."""
    proposal = propose_post(stack.slack, llm, db, f"Draft from the agent ({new_marker(6)})")
    reacted_at = db.execute("SELECT now() AS at").fetchone()
    assert reacted_at is not None
    stack.slack.click_button(APPROVER, APPROVALS, proposal.approval.ts, "review_edit")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the edit modal")
    stack.slack.submit_view(APPROVER, view.id, {"edited_text": {"text": "Edited words"}})
    edited = wait_for(lambda: (r := action_row(db, proposal.action["id"]))["version"] == 2 and r)

    # When the worker handles the ✅ that arrived before the edit
    apply_decision(
        worker_conn,
        make_web_client(stack.slack.bot_token, stack.slack.api_url),
        tenant_settings.load(worker_conn, tenant),
        Decision(APPROVER, "approve", edited, channel=APPROVALS, received_at=reacted_at["at"]),
        lambda action_id: pytest.fail("nothing should run"),
    )

    assert action_row(db, proposal.action["id"])["status"] == "pending"
    told = [m.text for m in stack.slack.workspace.ephemeral_messages(APPROVER)]
    assert any("before the last edit" in t for t in told)
