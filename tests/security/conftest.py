"""The sandbox tenant reset for hostile-input tests, a member of another organisation in
the session's Slack workspace, and a second listener process with short timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sandbox.slack_workspace import User
from testbed.markers import new_marker
from tests.support.processes import ChatopsProcess
from tests.support.stack import Stack, free_port

DB = psycopg.Connection[dict[str, Any]]
APPROVALS = "C0APPROVALS"
APPROVER = "U0APPROVER"
REQUESTER = "U0REQUESTER"
ADMIN = "U0ADMIN"
# An admin of another organisation, in this workspace's shared channels (Slack Connect).
PARTNER = "U0PARTNERADM"
PARTNER_TEAM = "T0PARTNER"


@pytest.fixture
def tenant(stack: Stack, db: DB) -> Iterator[int]:
    """The sandbox workspace's tenant: approvals in #approvals by one approver, not
    paused, no app admins, and nothing remembered about who anyone is."""
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    tenant_id: int = row["tenant_id"]

    def reset() -> None:
        db.execute(
            """INSERT INTO tenant_settings (tenant_id, approval_channel_id, four_eyes, paused)
               VALUES (%s, %s, false, false)
               ON CONFLICT (tenant_id) DO UPDATE SET approval_channel_id = EXCLUDED.approval_channel_id,
                 four_eyes = false, paused = false, approver_group_id = NULL""",
            (tenant_id, APPROVALS),
        )
        db.execute("DELETE FROM tenant_approvers WHERE tenant_id = %s", (tenant_id,))
        db.execute(
            "INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by) VALUES (%s, %s, 'test')",
            (tenant_id, APPROVER),
        )
        db.execute("DELETE FROM tenant_admins WHERE tenant_id = %s", (tenant_id,))
        db.execute("DELETE FROM slack_user_checks WHERE tenant_id = %s", (tenant_id,))

    reset()
    yield tenant_id
    stack.slack.faults.clear()
    reset()


@pytest.fixture(scope="session")
def partner(stack: Stack) -> str:
    """A workspace admin of another organisation, in #approvals (shared through Slack
    Connect for these tests): Slack says `is_admin`, but of their own organisation."""
    workspace = stack.slack.workspace
    workspace.add_user(
        User(
            PARTNER,
            "pat",
            "Pat Partner",
            PARTNER_TEAM,
            "pat@partner.example",
            title="Partner's workspace admin",
            is_admin=True,
            is_owner=True,
            updated=int(time.time()),
        )
    )
    workspace.join(APPROVALS, PARTNER)
    return PARTNER


@pytest.fixture(scope="module")
def strict_listener(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """A second `chatops serve` on the same database, with short request timeouts:
    (its /slack/events URL, its port)."""
    port = free_port()
    env = stack.env | {"HTTP_BODY_TIMEOUT_SECONDS": "1", "HTTP_IDLE_TIMEOUT_SECONDS": "2"}
    process = ChatopsProcess(
        ["serve", "--port", str(port)], env, tmp_path_factory.mktemp("strict") / "serve.log"
    )
    process.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        yield f"http://127.0.0.1:{port}/slack/events", port
    finally:
        process.stop()


@pytest.fixture
def email_inbox(
    stack: Stack, db: DB, tenant: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, ChatopsProcess]]:
    """`chatops smtp` for a fresh inbox of the sandbox tenant, queueing to the session's
    worker: (the inbox address, its port, the listener process)."""
    from connectors.email.inboxes import add_inbox

    address = f"help-{new_marker(6)}@acme.example"
    add_inbox(db, tenant, address)
    port = free_port()
    listener = ChatopsProcess(
        ["smtp"],
        stack.env | {"SMTP_PORT": str(port)},
        tmp_path_factory.mktemp("smtp") / "smtp.log",
    )
    listener.start(ready_line="smtp.ready")
    try:
        yield address, port, listener
    finally:
        listener.stop()
        db.execute(
            "UPDATE tenant_settings SET email_thread_scope = 'sender' WHERE tenant_id = %s",
            (tenant,),
        )
