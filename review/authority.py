"""Who may decide: approvers for actions, admins for the changing /agent commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from review.tenant_settings import ReviewSettings


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""  # for people, when not allowed


def may_approve(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    settings: ReviewSettings,
    user_id: str,
    requested_by: str,
) -> Verdict:
    if settings.four_eyes and user_id == requested_by:
        return Verdict(
            False, "you asked for this action, and this workspace needs someone else to approve it"
        )
    approvers = {
        r["slack_user_id"]
        for r in conn.execute(
            "SELECT slack_user_id FROM tenant_approvers WHERE tenant_id = %s",
            (settings.tenant_id,),
        )
    }
    if user_id in approvers:
        return Verdict(True)
    if settings.approver_group_id and user_id in _group_members(client, settings.approver_group_id):
        return Verdict(True)
    if (
        not approvers
        and not settings.approver_group_id
        and is_admin(conn, client, settings.tenant_id, user_id)
    ):
        # With no approvers configured yet, the workspace's admins decide.
        return Verdict(True)
    return Verdict(
        False,
        "you are not one of this workspace's approvers (an admin can add you with `/agent approvers add @you`)",
    )


def is_admin(
    conn: Connection[dict[str, Any]], client: WebClient, tenant_id: int, user_id: str
) -> bool:
    """A workspace admin or owner, or someone the tenant made an admin of this app."""
    configured = conn.execute(
        "SELECT 1 FROM tenant_admins WHERE tenant_id = %s AND slack_user_id = %s",
        (tenant_id, user_id),
    ).fetchone()
    if configured:
        return True
    return slack_admin(client.users_info(user=user_id).get("user") or {})


def slack_admin(user: dict[str, Any]) -> bool:
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


def _group_members(client: WebClient, group_id: str) -> set[str]:
    try:
        return set(client.usergroups_users_list(usergroup=group_id).get("users") or [])
    except SlackApiError:
        return set()
