"""`/agent pause` works when things are on fire: Slack rate-limiting `users.info` does
not stop an admin from pausing, and never lets anyone else change anything."""

from __future__ import annotations

from tests.security.conftest import ADMIN, DB, REQUESTER
from tests.support.stack import Stack

RATE_LIMITED = 50  # more 429s than any test here makes calls


def _paused(db: DB, tenant: int) -> bool:
    row = db.execute(
        "SELECT paused FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    return bool(row and row["paused"])


def _run(stack: Stack, user: str, text: str) -> tuple[int | None, str]:
    result = stack.slack.run_slash_command(user, "C0GENERAL", text)
    return result.status, (result.response or {}).get("text", "")


def test_admin_checks_are_cached(stack: Stack, tenant: int) -> None:
    """Two admin commands in a row ask Slack who the admin is once."""
    stack.slack.log.clear()
    assert _run(stack, ADMIN, "audit 1")[0] == 200
    assert _run(stack, ADMIN, "feedback")[0] == 200
    assert len(stack.slack.calls("users.info")) == 1


def test_pause_works_while_slack_rate_limits_users_info(stack: Stack, db: DB, tenant: int) -> None:
    """An admin Slack confirmed earlier pauses during a storm of 429s on users.info: the
    answer is the pause notice, not a 500, even when the verdict is hours old."""
    assert _run(stack, ADMIN, "audit 1")[0] == 200  # Slack says: an admin
    db.execute(
        "UPDATE slack_user_checks SET checked_at = now() - interval '3 hours' WHERE tenant_id = %s",
        (tenant,),
    )
    stack.slack.fail_next("users.info", times=RATE_LIMITED)

    status, text = _run(stack, ADMIN, "pause")
    assert status == 200 and "Paused" in text
    assert _paused(db, tenant)


def test_other_admin_commands_wait_for_slack_rather_than_trust_an_old_verdict(
    stack: Stack, db: DB, tenant: int
) -> None:
    """With the same old verdict and Slack still failing, a command that grants or changes
    more than pause is refused with a message that says why, and changes nothing."""
    assert _run(stack, ADMIN, "audit 1")[0] == 200
    db.execute(
        "UPDATE slack_user_checks SET checked_at = now() - interval '3 hours' WHERE tenant_id = %s",
        (tenant,),
    )
    stack.slack.fail_next("users.info", times=RATE_LIMITED)

    status, text = _run(stack, ADMIN, f"approvers add <@{REQUESTER}>")
    assert status == 200 and "Slack didn't answer" in text
    approvers = db.execute(
        "SELECT slack_user_id FROM tenant_approvers WHERE tenant_id = %s", (tenant,)
    ).fetchall()
    assert {r["slack_user_id"] for r in approvers} == {"U0APPROVER"}


def test_the_apps_own_admins_pause_without_asking_slack(stack: Stack, db: DB, tenant: int) -> None:
    """Someone made an admin of the app with `/agent admins add` pauses while every
    users.info call fails, and Slack is not even asked."""
    status, text = _run(stack, ADMIN, f"admins add <@{REQUESTER}|riley>")
    assert status == 200 and "is now one of this app's admins" in text
    stack.slack.fail_next("users.info", times=RATE_LIMITED)
    stack.slack.log.clear()

    status, text = _run(stack, REQUESTER, "pause")
    assert status == 200 and "Paused" in text
    assert _paused(db, tenant)
    assert stack.slack.calls("users.info") == []


def test_nobody_unconfirmed_gets_through_when_slack_fails(
    stack: Stack, db: DB, tenant: int
) -> None:
    """Someone Slack never confirmed as an admin, or confirmed as not one, cannot pause
    while Slack fails: a refusal, never a 500 and never a pause."""
    stack.slack.fail_next("users.info", times=RATE_LIMITED)
    status, text = _run(stack, REQUESTER, "pause")
    assert status == 200 and "Slack didn't answer" in text
    assert not _paused(db, tenant)

    stack.slack.faults.clear()
    assert "Only workspace admins" in _run(stack, REQUESTER, "pause")[1]  # Slack: not an admin
    db.execute(
        "UPDATE slack_user_checks SET checked_at = now() - interval '3 hours' WHERE tenant_id = %s",
        (tenant,),
    )
    stack.slack.fail_next("users.info", times=RATE_LIMITED)
    status, text = _run(stack, REQUESTER, "pause")
    assert status == 200 and "Only workspace admins" in text
    assert not _paused(db, tenant)
