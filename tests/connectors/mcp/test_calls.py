"""Calling MCP tools from the Act step: results come back, arguments are checked against
the server's schema first, the server's errors become words, and a dead session is
replaced."""

from __future__ import annotations

import ast
import os
import signal
import time

import pytest

from core.schemas import ToolCall
from tests.connectors.mcp.conftest import CallLog, servers_recording_to
from tests.connectors.workspace import Workspace

SERVERS = ["orders", "desk"]  # over stdio, over streamable HTTP


def _ask(workspace: Workspace, tool: str, arguments: dict[str, object]) -> tuple[bool, str]:
    """The Act step's answer to the model's call: (ok, output)."""
    result = workspace.toolbox().run(ToolCall(name=tool, arguments=arguments, reason="asked to"), 0)
    return result.ok, result.output


@pytest.mark.parametrize("server", SERVERS)
def test_a_read_only_tool_is_called_and_its_result_comes_back(
    workspace: Workspace, logs: dict[str, CallLog], server: str
) -> None:
    """The lookup runs at once; the server's structured result reaches the model."""
    ok, output = _ask(workspace, f"{server}__lookup_order", {"order_id": "ORD-1001"})

    assert ok
    result = ast.literal_eval(output)
    assert result["structured"] == {
        "order_id": "ORD-1001",
        "status": "shipped",
        "total_cents": 4200,
        "customer": "Acme",
    }
    assert '"status": "shipped"' in result["text"]
    [call] = logs[server].calls()
    assert call["tool"] == "lookup_order"
    assert call["arguments"] == {"order_id": "ORD-1001"}
    # The call carries the run's idempotency key, for servers that can use it.
    assert call["meta"]["chatops-agent/idempotency-key"].endswith(":call:0")


@pytest.mark.parametrize(
    ("tool", "arguments", "complaint"),
    [
        ("lookup_order", {"order_id": "1001"}, "order_id: '1001' does not match"),
        ("lookup_order", {}, "'order_id' is a required property"),
        ("refund_order", {"order_id": "ORD-1001", "amount_cents": -5}, "amount_cents: -5"),
    ],
)
@pytest.mark.parametrize("server", SERVERS)
def test_arguments_outside_the_servers_schema_never_reach_it(
    workspace: Workspace,
    logs: dict[str, CallLog],
    server: str,
    tool: str,
    arguments: dict[str, object],
    complaint: str,
) -> None:
    """An invalid call is a tool error the model can read; the server sees nothing and no
    action is proposed."""
    ok, output = _ask(workspace, f"{server}__{tool}", arguments)

    assert not ok
    assert output.startswith(f"invalid arguments for {server}__{tool}")
    assert complaint in output
    assert logs[server].calls() == []
    assert workspace.db.execute(
        "SELECT count(*) AS n FROM pending_actions WHERE tenant_id = %s", (workspace.tenant_id,)
    ).fetchone() == {"n": 0}


@pytest.mark.parametrize("server", SERVERS)
def test_the_servers_error_becomes_a_tool_error(
    workspace: Workspace, logs: dict[str, CallLog], server: str
) -> None:
    """A tool result flagged isError reaches the model as an error with the server's words."""
    ok, output = _ask(workspace, f"{server}__lookup_order", {"order_id": "ORD-4040"})

    assert ok  # the call ran; what it returned is an error the model can explain
    assert ast.literal_eval(output) == {
        "error": "Error executing tool lookup_order: no order ORD-4040"
    }
    assert len(logs[server].calls()) == 1


def test_a_stdio_server_that_died_is_started_again_for_the_next_call(
    workspace: Workspace, logs: dict[str, CallLog]
) -> None:
    """The dead session is replaced once and the call goes through on the new one."""
    [pid] = servers_recording_to(logs["orders"].path)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in servers_recording_to(logs["orders"].path) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the bridge has reaped it

    ok, output = _ask(workspace, "orders__lookup_order", {"order_id": "ORD-1001"})

    assert ok
    assert ast.literal_eval(output)["structured"]["status"] == "shipped"
    assert len(logs["orders"].calls()) == 1
    assert [p for p in servers_recording_to(logs["orders"].path) if p != pid] != []
