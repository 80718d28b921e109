"""In a Slack Connect channel, people of another organisation see the approval cards and
can type `/agent`, but only the tenant's own people approve, edit, reject or steer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.review.conftest import propose_post, wait_for_status
from tests.security.conftest import ADMIN, APPROVALS, DB
from tests.support.channels import new_channel
from tests.support.processes import wait_for
from tests.support.stack import Stack


@pytest.fixture
def admins_decide(db: DB, tenant: int) -> Iterator[int]:
    """No approvers configured (the default): workspace admins decide."""
    db.execute("DELETE FROM tenant_approvers WHERE tenant_id = %s", (tenant,))
    yield tenant


def _told(stack: Stack, user: str, since: float) -> list[str]:
    return [
        m.text
        for m in stack.slack.workspace.ephemeral_messages(user)
        if float(m.ts) >= since and "not counted" in m.text
    ]


def test_another_organisations_admin_cannot_run_agent_commands(
    stack: Stack, db: DB, tenant: int, partner: str
) -> None:
    """An admin of the partner organisation, in a shared channel, cannot pause, change
    approvers or even read the status; the assistant is not paused, nothing is audited."""
    shared = new_channel(stack.slack, shared=True)
    for text in ("pause", f"approvers add <@{partner}>", "status", "help"):
        result = stack.slack.run_slash_command(partner, shared, text)
        assert result.status == 200
        assert result.response is not None
        assert "own organisation" in result.response["text"], (text, result.response)
    assert db.execute(
        "SELECT paused FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"paused": False}
    assert db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE tenant_id = %s AND actor = %s",
        (tenant, partner),
    ).fetchone() == {"n": 0}
    # The tenant's own admin, in the same channel, still can.
    mine = stack.slack.run_slash_command(ADMIN, shared, "status")
    assert mine.response is not None and "Assistant status" in mine.response["text"]


def test_another_organisations_admin_cannot_approve_by_reaction_or_button(
    stack: Stack, llm: OpenAIEmulator, db: DB, admins_decide: int, partner: str
) -> None:
    """With admins deciding, the partner's admin reacts ✅ and presses Approve: neither
    counts, each is audited as ignored and the partner is told privately; then the
    tenant's own admin approves and the action runs once."""
    proposal = propose_post(stack.slack, llm, db, f"Cross-org test {new_marker(6)}")
    action_id = proposal.action["id"]
    since = time.time() - 1
    stack.slack.react_as_user(partner, APPROVALS, proposal.approval.ts, "white_check_mark")
    stack.slack.click_button(partner, APPROVALS, proposal.approval.ts, "review_approve")
    ignored = wait_for(
        lambda: (
            (
                rows := db.execute(
                    """SELECT details FROM audit_log WHERE action = 'action.decision_ignored'
                   AND subject = %s AND actor = %s""",
                    (f"action:{action_id}", partner),
                ).fetchall()
            )
            and len(rows) == 2
            and rows
        ),
        timeout=30,
        message="both of the partner's decisions to be ignored",
    )
    assert len(ignored) == 2
    assert wait_for(lambda: len(_told(stack, partner, since)) == 2)
    row = db.execute("SELECT status FROM pending_actions WHERE id = %s", (action_id,)).fetchone()
    assert row == {"status": "pending"}

    stack.slack.react_as_user(ADMIN, APPROVALS, proposal.approval.ts, "white_check_mark")
    wait_for_status(db, action_id, "executed", timeout=30)


def test_another_organisations_member_gets_no_edit_modal(
    stack: Stack, llm: OpenAIEmulator, db: DB, admins_decide: int, partner: str
) -> None:
    """Edit opens the modal for the tenant's people only; the partner's click opens none."""
    proposal = propose_post(stack.slack, llm, db, f"Edit test {new_marker(6)}")
    before = stack.slack.last_view(partner)
    result = stack.slack.click_button(partner, APPROVALS, proposal.approval.ts, "review_edit")
    assert result.status == 200
    time.sleep(1)
    assert stack.slack.last_view(partner) == before
