"""The MCP tools of one process: connect to the configured servers, discover their tools,
screen their definitions for prompt injection, and keep the sessions until the process
closes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.settings import Settings
from core.tools import Tool
from guardrails.injection import InjectionScreen

if TYPE_CHECKING:
    from connectors.mcp.bridge import McpBridge
    from connectors.mcp.screening import RejectedTool


@dataclass(frozen=True)
class McpToolset:
    tools: list[Tool]
    reachable: tuple[str, ...] = ()  # the servers that answered at start
    bridge: McpBridge | None = None  # None when no server is configured
    rejected: tuple[RejectedTool, ...] = ()  # left out: their definitions were flagged

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()


# The injection screen's heuristics, without a classifier: nothing to load.
HEURISTIC_SCREEN = InjectionScreen()


def load_mcp_tools(settings: Settings, screen: InjectionScreen = HEURISTIC_SCREEN) -> McpToolset:
    """Blocks for at most about MCP_CONNECT_TIMEOUT_SECONDS, however many servers are
    down: they are tried at once, and those not up in time are left out.

    `screen` judges each tool's description and schema text; the default is the
    heuristics alone, which load nothing, so every process that discovers tools (the
    worker, `chatops mcp tools`) rejects the same ones."""
    if not settings.mcp_servers:
        return McpToolset([])
    # Imported here: the MCP client library takes a second to import, which a worker
    # with no MCP server configured need not pay at start.
    from connectors.mcp.bridge import McpBridge
    from connectors.mcp.screening import screen_discovered
    from connectors.mcp.tools import mcp_tools

    bridge = McpBridge(
        settings.mcp_servers,
        connect_timeout=settings.mcp_connect_timeout_seconds,
        call_timeout=settings.mcp_call_timeout_seconds,
    ).start()
    discovered = bridge.discover()
    reachable = tuple(found.server.name for found in discovered)
    offered, rejected = screen_discovered(discovered, screen)
    return McpToolset(mcp_tools(bridge, offered), reachable, bridge, tuple(rejected))
