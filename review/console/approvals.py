"""`/agent approvals`, `approval-channel`, `approvers` and `four-eyes`: where actions wait
for a decision, who may decide them, and the list of those waiting (review/decisions.py
decides them)."""

from __future__ import annotations

from review import actions, people
from review.console import audit_log
from review.console.changes import change_setting
from review.console.context import Invocation, Reply
from review.console.mentions import channel_id, user_id
from review.messages import people_summary, person, shown

LIST_MAX = 20  # pending approvals listed


async def waiting(invocation: Invocation, args: list[str]) -> Reply:
    async with invocation.pool.connection() as conn:
        rows = await actions.waiting_async(conn, invocation.tenant_id, LIST_MAX)
    if not rows:
        return Reply("No actions are waiting for approval.")
    lines = ["*Waiting for approval*"]
    for row in rows:
        link = (
            f" · <https://slack.com/archives/{row['approval_channel_id']}/p{row['approval_ts'].replace('.', '')}|open>"
            if row["approval_ts"]
            else " · not posted yet (no approval channel)"
        )
        lines.append(
            f"• {people_summary(row)}, for {person(str(shown(row, 'requested_by')))}{link}"
        )
    return Reply("\n".join(lines))


async def approval_channel(invocation: Invocation, args: list[str]) -> Reply:
    channel = channel_id(args[0]) if args else None
    if channel is None:
        return Reply("Usage: `/agent approval-channel #channel`")
    await change_setting(invocation, "approval_channel_id", channel)
    return Reply(
        f"Actions will wait for approval in <#{channel}>. Invite me there if I'm not in it yet."
    )


async def approvers(invocation: Invocation, args: list[str]) -> Reply:
    someone = list_change(args)
    if someone is None:
        return Reply("Usage: `/agent approvers add @person` or `/agent approvers remove @person`")
    await change_list(invocation, "approvers", args[0], someone)
    verb = "can now approve" if args[0] == "add" else "can no longer approve"
    return Reply(f"<@{someone}> {verb} actions.")


async def four_eyes(invocation: Invocation, args: list[str]) -> Reply:
    if not args or args[0] not in ("on", "off"):
        return Reply("Usage: `/agent four-eyes on|off`")
    await change_setting(invocation, "four_eyes", args[0] == "on")
    if args[0] == "on":
        return Reply("Requesters can no longer approve their own actions.")
    return Reply("Requesters may approve their own actions.")


def list_change(args: list[str]) -> str | None:
    """The Slack user id in `add @person` / `remove @person`; None for anything else."""
    if len(args) != 2 or args[0] not in ("add", "remove"):
        return None
    return user_id(args[1])


async def change_list(
    invocation: Invocation, name: people.PeopleList, change: str, someone: str
) -> None:
    """Add or remove `someone` on the approvers or the admins, audited in the same
    transaction."""
    tenant_id, user = invocation.tenant_id, invocation.user
    async with invocation.pool.connection() as conn, conn.transaction():
        if change == "add":
            await people.add_async(conn, tenant_id, name, someone, user)
        else:
            await people.remove_async(conn, tenant_id, name, someone)
        await audit_log.record(conn, tenant_id, user, f"{name}.{change}", someone)
