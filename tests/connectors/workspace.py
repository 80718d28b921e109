"""A tenant with a conversation and a run, and the connectors' tools behind the review flow,
for connector tests that need no Slack: what the worker would build, minus the queue."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from slack_sdk import WebClient

from connectors.credentials import Credential, CredentialStore, cipher_from_settings
from connectors.registry import connector_tools
from core.db import Pool, open_pool
from core.schemas import ToolCall
from core.settings import Settings, load_settings
from core.tools import ActionContext, ToolRegistry
from guardrails.facade import Guardrails, build_guardrails
from review import actions
from review.execute import execute_action
from review.toolbox import ReviewedToolbox
from testbed.markers import new_marker

DB = psycopg.Connection[dict[str, Any]]
SIGNING_SECRET = "connector-tests-signing-secret"
REQUESTER = "U0REQUESTER"
APPROVER = "U0APPROVER"


def connector_settings(database_url: str, **overrides: object) -> Settings:
    return load_settings(
        database_url=database_url,
        slack_signing_secret=SIGNING_SECRET,
        connector_max_retry_after_seconds=5,
        **overrides,
    )


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[Pool]:
    opened = open_pool(database_url, max_size=3)
    yield opened
    opened.close()


@dataclass(frozen=True)
class Workspace:
    """One tenant, as the worker sees it, with the connector tools registered."""

    db: DB
    pool: Pool
    settings: Settings
    guardrails: Guardrails
    registry: ToolRegistry
    tenant_id: int
    conversation_id: int

    @property
    def context(self) -> ActionContext:
        return ActionContext(self.tenant_id, "xoxb-unused", REQUESTER)

    def connect(self, connector: str, token: str, account: str | None = None) -> None:
        store = CredentialStore(self.pool, cipher_from_settings(self.settings))
        store.store(self.tenant_id, connector, Credential(token, account), actor="U0ADMIN")

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A read-only tool's result, as the Act step runs it."""
        found = self.registry.get(tool)
        assert found is not None
        return found.run(self.context, found.parse(arguments), "unused")

    def toolbox(self) -> ReviewedToolbox:
        """The Act step's toolbox for a new run in this tenant's conversation."""
        return ReviewedToolbox(
            conn=self.db,
            registry=self.registry,
            context=self.context,
            conversation_id=self.conversation_id,
            run_id=_new_run(self.db, self.tenant_id, self.conversation_id),
            approval_ttl=timedelta(hours=1),
        )

    def propose(self, tool: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """What the model is told when it calls `tool`, and the action it became, if any."""
        toolbox = self.toolbox()
        result = toolbox.run(ToolCall(name=tool, arguments=arguments, reason="asked to"), 0)
        action = self.db.execute(
            "SELECT * FROM pending_actions WHERE run_id = %s", (toolbox.run_id,)
        ).fetchone()
        return result.output, action

    def approve(self, action: dict[str, Any]) -> None:
        approved = actions.transition(
            self.db,
            action,
            to="approved",
            allowed_from=["pending"],
            actor=APPROVER,
            audit_action="action.approved",
            # Handed over (queued_at), as the approval job marks it before it enqueues the
            # execution: this test runs it in-process, so the review sweep of a session
            # worker must not relay it to a worker whose registry lacks this test's tools.
            changes={"decided_by": APPROVER, "decided_at": actions.NOW, "queued_at": actions.NOW},
        )
        assert approved is not None

    def propose_and_approve(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The action calling `tool` became, once an approver has approved it."""
        _, action = self.propose(tool, arguments)
        assert action is not None
        self.approve(action)
        return action

    def execute(self, action_id: int) -> dict[str, Any]:
        """Run the approved action as the worker's job does; the action's row afterwards."""
        execute_action(self.db, _no_slack, self.registry, self.guardrails, action_id)
        row = self.db.execute(
            "SELECT * FROM pending_actions WHERE id = %s", (action_id,)
        ).fetchone()
        assert row is not None
        return row


def make_workspace(db: DB, pool: Pool, database_url: str, **urls: str) -> Callable[[], Workspace]:
    settings = connector_settings(database_url, **urls)
    guardrails = build_guardrails(settings, pool)
    registry = ToolRegistry.of(*connector_tools(settings, pool))

    def new() -> Workspace:
        tenant_id = _new_tenant(db)
        conversation = db.execute(
            """INSERT INTO conversations (tenant_id, channel_kind, external_key)
               VALUES (%s, 'email', %s) RETURNING id""",
            (tenant_id, f"<{uuid.uuid4().hex}@test>"),
        ).fetchone()
        assert conversation is not None
        return Workspace(db, pool, settings, guardrails, registry, tenant_id, conversation["id"])

    return new


def _new_tenant(db: DB) -> int:
    team = f"T{new_marker(10).upper()}"
    row = db.execute(
        "INSERT INTO tenants (name, slack_team_id) VALUES ('Connector test', %s) RETURNING id",
        (team,),
    ).fetchone()
    assert row is not None
    # An approved action is executed with the tenant's bot token; these tests never post.
    db.execute(
        """INSERT INTO slack_installations (tenant_id, team_id, bot_id, bot_user_id, bot_token)
           VALUES (%s, %s, 'B0BOT', 'U0BOT', 'xoxb-unused')""",
        (row["id"], team),
    )
    return int(row["id"])


def _new_run(db: DB, tenant_id: int, conversation_id: int) -> int:
    request = db.execute(
        """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload)
           VALUES (%s, 'email', %s, 'email', '{}') RETURNING id""",
        (tenant_id, uuid.uuid4().hex),
    ).fetchone()
    assert request is not None
    run = db.execute(
        """INSERT INTO agent_runs (tenant_id, conversation_id, request_id)
           VALUES (%s, %s, %s) RETURNING id""",
        (tenant_id, conversation_id, request["id"]),
    ).fetchone()
    assert run is not None
    return int(run["id"])


def _no_slack(token: str) -> WebClient:
    # No approval message and no Slack thread: the executor has nothing to post.
    return WebClient(token=token, base_url="http://127.0.0.1:9/")
