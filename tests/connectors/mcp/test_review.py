"""MCP tools under the same review and policy as built-in tools: an external one waits
for approval and then runs once; a tenant's deny list keeps a tool from being used."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.mcp.errors import McpOutcomeUnknown
from connectors.mcp.toolset import load_mcp_tools
from core.schemas import ToolCall
from core.tools import ToolRegistry
from guardrails.adapters import ScreenedToolbox
from guardrails.policy import TenantPolicy, ToolPolicy
from tests.connectors.mcp.conftest import (
    CallLog,
    free_port,
    http_server_config,
    mcp_settings,
    start_http_server,
    stdio_server,
    stop,
)
from tests.connectors.workspace import Workspace

SERVERS = ["orders", "desk"]  # over stdio, over streamable HTTP
REFUND = {"order_id": "ORD-1001", "amount_cents": 1500}


class ShopServer:
    """The "shop" MCP server over streamable HTTP on one port, which a test stops and
    starts again (a restart keeps the port and the log of calls)."""

    def __init__(self, log: CallLog) -> None:
        self.log = log
        self.port = free_port()
        self._process = start_http_server(self.port, log)

    def start(self) -> None:
        self._process = start_http_server(self.port, self.log)

    def stop(self) -> None:
        stop(self._process)


@contextmanager
def approved_refund_on_shop(
    workspace: Workspace, database_url: str, tmp_path: Path
) -> Iterator[tuple[Workspace, dict[str, Any], ShopServer]]:
    """A refund on the "shop" server, proposed and approved but not yet executed, by a
    workspace offered that server's tools."""
    shop = ShopServer(CallLog(tmp_path / "calls.jsonl"))
    loaded = load_mcp_tools(
        mcp_settings(
            database_url, [http_server_config("shop", f"http://127.0.0.1:{shop.port}/mcp")]
        )
    )
    try:
        space = dataclasses.replace(workspace, registry=ToolRegistry.of(*loaded.tools))
        action = space.propose_and_approve("shop__refund_order", REFUND)
        yield space, action, shop
    finally:
        loaded.close()
        shop.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_an_external_tool_waits_for_approval_then_runs_once(
    workspace: Workspace, logs: dict[str, CallLog], server: str
) -> None:
    """The refund is proposed, not made; once approved it is made exactly once, with the
    action's idempotency key."""
    told, action = workspace.propose(f"{server}__refund_order", REFUND)

    assert told.startswith("Waiting for approval, not done yet: action ")
    assert action is not None and action["status"] == "pending"
    assert action["payload"] == REFUND
    assert action["summary"] == (
        f'refund_order on MCP server {server}: {{"order_id": "ORD-1001", "amount_cents": 1500}}'
    )
    assert logs[server].calls() == []

    workspace.approve(action)
    executed = workspace.execute(action["id"])
    again = workspace.execute(action["id"])  # a duplicate job finds it done

    assert executed["status"] == again["status"] == "executed"
    assert executed["result"] == {
        "text": "Refunded 1500 cents on ORD-1001",
        "structured": {"result": "Refunded 1500 cents on ORD-1001"},
    }
    [call] = logs[server].calls()
    assert call["tool"] == "refund_order" and call["arguments"] == REFUND
    assert call["meta"] == {"chatops-agent/idempotency-key": action["idempotency_key"]}


def test_an_approved_call_the_server_refuses_fails_with_its_reason(
    workspace: Workspace, logs: dict[str, CallLog]
) -> None:
    """The server's isError answer marks the action failed, with the server's words."""
    action = workspace.propose_and_approve("orders__refund_order", {**REFUND, "order_id": "ORD-7"})

    failed = workspace.execute(action["id"])

    assert failed["status"] == "failed"
    assert failed["error"] == "Error executing tool refund_order: no order ORD-7"
    assert len(logs["orders"].calls()) == 1


def test_a_tenant_that_denies_the_servers_tools_cannot_use_them(
    workspace: Workspace, logs: dict[str, CallLog]
) -> None:
    """With `orders__*` denied, neither the lookup nor the refund is attempted, and a
    refund approved before the rule changed is not made either."""
    _, approved_earlier = workspace.propose("orders__refund_order", REFUND)
    assert approved_earlier is not None
    workspace.approve(approved_earlier)
    deny = TenantPolicy(tools=ToolPolicy(deny=["orders__*"]))
    workspace.guardrails.policies.save(workspace.tenant_id, deny, updated_by="U0ADMIN")
    toolbox = ScreenedToolbox(
        workspace.toolbox(),
        workspace.guardrails,
        workspace.tenant_id,
        str(workspace.conversation_id),
        channel=None,
    )

    lookup = toolbox.run(
        ToolCall(
            name="orders__lookup_order",
            arguments={"order_id": "ORD-1001"},
            reason="asked to",
        ),
        0,
    )
    refund = toolbox.run(
        ToolCall(name="orders__refund_order", arguments=REFUND, reason="asked"),
        1,
    )
    executed = workspace.execute(approved_earlier["id"])

    refusal = "Refused by policy, not attempted: I'm not allowed to use"
    assert not lookup.ok and lookup.output.startswith(f"{refusal} orders__lookup_order")
    assert not refund.ok and refund.output.startswith(f"{refusal} orders__refund_order")
    assert executed["status"] == "failed"
    assert executed["error"] == "I'm not allowed to use orders__refund_order in this workspace."
    assert logs["orders"].calls() == []
    # Another server's tools are not caught by the rule.
    other = toolbox.run(
        ToolCall(
            name="desk__lookup_order",
            arguments={"order_id": "ORD-1001"},
            reason="asked to",
        ),
        2,
    )
    assert other.ok and len(logs["desk"].calls()) == 1


def test_an_approved_call_to_a_server_that_went_down_fails_without_being_sent(
    workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    """The server stopped between approval and execution: the action fails saying so, and
    nothing is sent when the server is back."""
    with approved_refund_on_shop(workspace, database_url, tmp_path) as (space, action, shop):
        shop.stop()

        failed = space.execute(action["id"])

        assert failed["status"] == "failed"
        assert failed["error"] == "MCP server shop is unreachable (could not connect)"
        shop.start()
        assert space.execute(action["id"])["status"] == "failed"
        assert shop.log.calls() == []


def test_an_http_server_that_restarted_gets_a_new_session_and_the_call(
    workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    """A restarted server no longer knows our session; the approved call, turned away
    unread, is sent once on a new session."""
    with approved_refund_on_shop(workspace, database_url, tmp_path) as (space, action, shop):
        shop.stop()
        shop.start()

        executed = space.execute(action["id"])

        assert executed["status"] == "executed", executed["error"]
        assert len(shop.log.calls()) == 1


def test_a_call_whose_answer_never_came_is_not_sent_again(
    workspace: Workspace, database_url: str, stdio_log: CallLog
) -> None:
    """With no answer in time the outcome is unknown: the job fails and its retry marks
    the action failed instead of refunding a second time."""
    loaded = load_mcp_tools(
        mcp_settings(
            database_url, [stdio_server("slow", stdio_log)], mcp_call_timeout_seconds=0.001
        )
    )
    try:
        space = dataclasses.replace(workspace, registry=ToolRegistry.of(*loaded.tools))
        action = space.propose_and_approve("slow__refund_order", REFUND)
        stdio_log.clear()

        with pytest.raises(McpOutcomeUnknown):
            space.execute(action["id"])  # the job fails; Dramatiq would retry it
        retried = space.execute(action["id"])

        assert retried["status"] == "failed"
        assert retried["error"] == (
            "it was interrupted and could not be checked, so it was not retried"
        )
        time.sleep(0.5)  # let a late call land in the log, if it was sent
        assert len(stdio_log.calls()) <= 1
    finally:
        loaded.close()
