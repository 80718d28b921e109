"""The sandbox tenant's setup, as an operator would do it once for a new workspace.

`chatops serve` records the sandbox workspace as a tenant when it starts; this gives that
tenant what a demo needs: approvals in #approvals decided by the approver, an agent inbox
for inbound mail, and one customer domain the agent may write to. Every step is
idempotent, so a restart with the same data changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from connectors.email.inboxes import add_inbox
from core.errors import StartupError

TENANT_WAIT = 30.0  # seconds for `chatops serve` to record the workspace


@dataclass(frozen=True)
class SandboxTenant:
    team_id: str
    approval_channel: str
    approver: str
    inbox: str  # where people write to the agent
    customer_domain: str  # the one domain the agent may start new mail to


def seed_tenant(database_url: str, tenant: SandboxTenant) -> int:
    """Configure the sandbox workspace's tenant; returns its id."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        tenant_id = _wait_for_tenant(conn, tenant.team_id)
        conn.execute(
            """INSERT INTO tenant_settings (tenant_id, approval_channel_id) VALUES (%s, %s)
               ON CONFLICT (tenant_id) DO NOTHING""",
            (tenant_id, tenant.approval_channel),
        )
        conn.execute(
            """INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by)
               VALUES (%s, %s, 'sandbox') ON CONFLICT DO NOTHING""",
            (tenant_id, tenant.approver),
        )
        known = conn.execute(
            "SELECT 1 FROM tenant_inboxes WHERE tenant_id = %s AND address = %s",
            (tenant_id, tenant.inbox),
        ).fetchone()
        if known is None:
            add_inbox(conn, tenant_id, tenant.inbox)
        conn.execute(
            """INSERT INTO tenant_email_allowlist (tenant_id, domain) VALUES (%s, %s)
               ON CONFLICT DO NOTHING""",
            (tenant_id, tenant.customer_domain),
        )
        return tenant_id


def _wait_for_tenant(conn: psycopg.Connection[dict[str, Any]], team_id: str) -> int:
    deadline = time.monotonic() + TENANT_WAIT
    while True:
        row = conn.execute(
            "SELECT tenant_id FROM slack_installations WHERE team_id = %s LIMIT 1", (team_id,)
        ).fetchone()
        if row is not None:
            tenant_id: int = row["tenant_id"]
            return tenant_id
        if time.monotonic() > deadline:
            raise StartupError(f"chatops serve did not record the sandbox workspace {team_id}")
        time.sleep(0.2)
