"""`/agent`: admins steer the assistant; everyone else may look but not change."""

from __future__ import annotations

from tests.review.conftest import APPROVER, DB, REQUESTER
from tests.support.stack import Stack

ADMIN = "U0ADMIN"  # a workspace admin in the sandbox workspace


def test_help_and_unknown_subcommands(stack: Stack, tenant: int) -> None:
    """`/agent` alone shows the commands; an unknown one says so and shows them too."""
    help_text = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", "").response
    assert help_text is not None and "approval-channel" in help_text["text"]
    unknown = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", "dance").response
    assert unknown is not None and "I don't know `dance`" in unknown["text"]


def test_admin_sets_the_approval_channel_and_approvers(stack: Stack, db: DB, tenant: int) -> None:
    """A workspace admin changes settings; each change is audited."""
    reply = stack.slack.run_slash_command(
        ADMIN, "C0GENERAL", "approval-channel <#C0SUPPORT|support>"
    )
    assert reply.status == 200 and "C0SUPPORT" in reply.response["text"]
    assert db.execute(
        "SELECT approval_channel_id FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"approval_channel_id": "C0SUPPORT"}

    stack.slack.run_slash_command(ADMIN, "C0GENERAL", f"approvers add <@{REQUESTER}|riley>")
    approvers = {
        r["slack_user_id"]
        for r in db.execute(
            "SELECT slack_user_id FROM tenant_approvers WHERE tenant_id = %s", (tenant,)
        )
    }
    assert approvers == {APPROVER, REQUESTER}
    audit = [
        r["action"]
        for r in db.execute(
            "SELECT action FROM audit_log WHERE tenant_id = %s AND actor = %s ORDER BY id DESC LIMIT 2",
            (tenant, ADMIN),
        )
    ]
    assert audit == ["approvers.add", "settings.approval_channel_id"]


def test_non_admin_is_refused_changing_commands(stack: Stack, db: DB, tenant: int) -> None:
    """Someone who is not an admin cannot pause the assistant or read the audit log."""
    for command in ("pause", "audit", "approvers add <@U0REQUESTER>"):
        reply = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", command)
        assert reply.response is not None
        assert "Only workspace admins" in reply.response["text"]
    assert db.execute(
        "SELECT paused FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"paused": False}


def test_pause_makes_new_requests_get_a_notice(stack: Stack, llm, db: DB, tenant: int) -> None:  # type: ignore[no-untyped-def]
    """While paused, a mention is answered with the pause notice and the model is not called."""
    from tests.support.conversation import mention, unique_question, wait_for_answer

    reply = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "pause")
    assert reply.response is not None and reply.response.get("response_type") == "in_channel"
    question = unique_question("Are you there?")
    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)
    assert "paused" in answer.text
    assert llm.requests(match=question) == []
    stack.slack.run_slash_command(ADMIN, "C0GENERAL", "resume")
    assert db.execute(
        "SELECT paused FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"paused": False}


def test_status_and_approvals_are_readable_by_anyone(stack: Stack, tenant: int) -> None:
    """`status` and `approvals` answer anyone, privately."""
    status = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", "status").response
    assert status is not None and "Pending approvals" in status["text"]
    assert status.get("response_type", "ephemeral") == "ephemeral"
    approvals = stack.slack.run_slash_command(REQUESTER, "C0GENERAL", "approvals").response
    assert approvals is not None and approvals["text"]


def test_admin_changes_the_guardrail_policy_and_bad_values_are_explained(
    stack: Stack, db: DB, tenant: int
) -> None:
    """`/agent policy set` changes one guardrail setting, audited; an impossible value is
    refused with the reason; a plain user cannot change it."""
    try:
        reply = stack.slack.run_slash_command(
            ADMIN, "C0GENERAL", "policy set pii.approver_view real"
        ).response
        assert reply is not None and reply["text"] == "`pii.approver_view` is now `real`."
        stored = db.execute(
            "SELECT policy FROM guardrail_policies WHERE tenant_id = %s", (tenant,)
        ).fetchone()
        assert stored is not None and stored["policy"]["pii"]["approver_view"] == "real"

        shown = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "policy").response
        assert shown is not None and "• `pii.approver_view`: `real`" in shown["text"]
        assert "• `toxicity.action`: `review`" in shown["text"]

        bad = stack.slack.run_slash_command(
            ADMIN, "C0GENERAL", "policy set toxicity.action shout"
        ).response
        assert bad is not None and "cannot be `shout`" in bad["text"] and "'block'" in bad["text"]
        unknown = stack.slack.run_slash_command(
            ADMIN, "C0GENERAL", "policy set pii.colour red"
        ).response
        assert unknown is not None and "There is no setting `pii.colour`" in unknown["text"]

        refused = stack.slack.run_slash_command(
            REQUESTER, "C0GENERAL", "policy set pii.approver_view placeholders"
        ).response
        assert refused is not None and "Only workspace admins" in refused["text"]
        audit = db.execute(
            "SELECT action, subject FROM audit_log WHERE tenant_id = %s AND actor = %s"
            " ORDER BY id DESC LIMIT 1",
            (tenant, ADMIN),
        ).fetchone()
        assert audit == {"action": "policy.set", "subject": "pii.approver_view=real"}
    finally:
        db.execute("DELETE FROM guardrail_policies WHERE tenant_id = %s", (tenant,))
