"""Discovery at worker start: the configured MCP servers' tools become agent tools with
their declared effects; a server that is down is reported and skipped, never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from structlog.testing import capture_logs

from connectors.mcp.toolset import McpToolset, load_mcp_tools
from core.tools import Effect
from tests.connectors.mcp.conftest import (
    CallLog,
    HttpServer,
    free_port,
    http_server_config,
    mcp_settings,
    stdio_server,
)
from tests.connectors.mcp.orders_server import INJECTED_ARGUMENT, INJECTED_DESCRIPTION
from tests.support.processes import REPO

SECRET = "Bearer sk-live-0123456789abcdef"


def test_tools_of_both_transports_are_discovered_with_their_effects(toolset: McpToolset) -> None:
    """Every page of each server's tool list is read; undeclared tools are external."""
    found = {tool.name: tool.effect for tool in toolset.tools}

    assert found == {
        "orders__lookup_order": Effect.READ_ONLY,
        "orders__refund_order": Effect.EXTERNAL,
        "desk__lookup_order": Effect.READ_ONLY,
        "desk__refund_order": Effect.EXTERNAL,
    }
    assert toolset.reachable == ("orders", "desk")


def test_the_model_sees_the_servers_description_and_schema(toolset: McpToolset) -> None:
    """The prompt describes an MCP tool with the server's words and input schema."""
    lookup = next(tool for tool in toolset.tools if tool.name == "orders__lookup_order")

    described = lookup.describe()

    assert described["description"] == "Look up an order by its id (ORD- and digits)."
    assert described["needs_approval"] is False
    schema = described["arguments"]
    assert schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"]["pattern"] == r"^ORD-\d+$"


def test_a_server_that_is_down_is_logged_and_skipped(database_url: str, stdio_log: CallLog) -> None:
    """A refused connection and a missing command each give one clear log line without
    the server's secrets; the other server's tools are still offered, within seconds."""
    closed = free_port()
    down = http_server_config("crm", f"http://127.0.0.1:{closed}/mcp")
    down["headers"] = {"Authorization": SECRET}
    missing = {"name": "wiki", "transport": "stdio", "command": "/nonexistent/wiki-mcp"}
    settings = mcp_settings(
        database_url,
        [down, missing, stdio_server("orders", stdio_log)],
        mcp_connect_timeout_seconds=5,
    )

    started = time.monotonic()
    with capture_logs() as logged:
        loaded = load_mcp_tools(settings)
    loaded.close()

    assert time.monotonic() - started < 7
    assert sorted(tool.name for tool in loaded.tools) == [
        "orders__lookup_order",
        "orders__refund_order",
    ]
    unavailable = {e["server"]: e for e in logged if e["event"] == "mcp.server_unavailable"}
    assert unavailable["crm"]["reason"] == "could not connect"
    assert unavailable["wiki"]["reason"] == "command not found"
    assert SECRET not in repr(logged)


def test_a_tool_whose_definition_injects_instructions_is_left_out(
    database_url: str, stdio_log: CallLog
) -> None:
    """A tool whose description, or an argument's description, tells the model what to do
    is not offered; one log line names the server, tool and reason, without the text."""
    settings = mcp_settings(database_url, [stdio_server("orders", stdio_log, poisoned=True)])

    with capture_logs() as logged:
        loaded = load_mcp_tools(settings)
    loaded.close()

    assert sorted(tool.name for tool in loaded.tools) == [
        "orders__lookup_order",
        "orders__refund_order",
    ]
    rejected = {e["tool"]: e for e in logged if e["event"] == "mcp.tool_rejected"}
    assert sorted(rejected) == ["count_orders", "export_orders"]
    assert rejected["export_orders"]["server"] == "orders"
    assert rejected["export_orders"]["reason"].startswith("description: possible prompt injection")
    assert "ignore its instructions" in rejected["export_orders"]["reason"]
    assert rejected["count_orders"]["reason"].startswith(
        "inputSchema.properties.customer.description: possible prompt injection"
    )
    # In the server's order, for `chatops mcp tools` to list.
    assert [(r.server, r.tool) for r in loaded.rejected] == [
        ("orders", "export_orders"),
        ("orders", "count_orders"),
    ]
    for fragment in ("collector.example", "developer mode"):
        assert fragment not in repr(logged)
    assert INJECTED_DESCRIPTION not in repr(logged) and INJECTED_ARGUMENT not in repr(logged)


def test_a_server_slower_than_the_timeout_does_not_hold_up_the_start(database_url: str) -> None:
    """A server that never answers the handshake is given up after the connect timeout."""
    # A process that never reads or answers the handshake, like a hung server.
    silent = {
        "name": "silent",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", "import time; time.sleep(60)"],
    }
    settings = mcp_settings(database_url, [silent], mcp_connect_timeout_seconds=1)

    started = time.monotonic()
    with capture_logs() as logged:
        loaded = load_mcp_tools(settings)
    loaded.close()

    assert time.monotonic() - started < 4
    assert loaded.tools == []
    assert [e["reason"] for e in logged if e["event"] == "mcp.server_unavailable"] == [
        "no answer in time"
    ]


def test_chatops_mcp_tools_lists_tools_and_effects(
    database_url: str, stdio_log: CallLog, http_server: HttpServer
) -> None:
    """`chatops mcp tools` prints each tool with its effect, and names the tools it rejected
    and the servers it missed."""
    servers = [
        stdio_server("orders", stdio_log, poisoned=True),
        http_server_config("desk", http_server.url),
        http_server_config("crm", f"http://127.0.0.1:{free_port()}/mcp"),
    ]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SLACK_SIGNING_SECRET": "cli-test-secret",
        "LOG_FORMAT": "json",
        "MCP_SERVERS": json.dumps(servers),
    }

    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "mcp", "tools"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    out = done.stdout.splitlines()
    # Log lines (JSON) share stdout with the listing.
    logged = [json.loads(line) for line in out if line.startswith("{")]
    lines = [line for line in out if not line.startswith("{")]
    assert done.returncode == 1  # a configured server is unreachable, tools were rejected
    assert [line.split()[:2] for line in lines[:4]] == [
        ["desk__lookup_order", "read_only"],
        ["desk__refund_order", "external"],
        ["orders__lookup_order", "read_only"],
        ["orders__refund_order", "external"],
    ]
    assert lines[4] == "4 tool(s) from 2 server(s)"
    assert [line.split(": ")[:2] for line in lines[5:7]] == [
        ["orders", "export_orders rejected, not offered"],
        ["orders", "count_orders rejected, not offered"],
    ]
    assert all("possible prompt injection" in line for line in lines[5:7])
    assert lines[7:] == ["crm: unreachable, no tools (see the log)"]
    assert INJECTED_DESCRIPTION not in done.stdout
    assert [e["server"] for e in logged if e.get("event") == "mcp.server_unavailable"] == ["crm"]
