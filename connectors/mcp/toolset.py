"""The MCP tools of one process: connect to the configured servers, discover their tools,
and keep the sessions until the process closes them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.agent.tools import Tool
from bot.settings import Settings
from connectors.mcp.bridge import McpBridge
from connectors.mcp.tools import mcp_tools


@dataclass(frozen=True)
class McpToolset:
    tools: list[Tool]
    reachable: tuple[str, ...] = ()  # the servers that answered at start
    bridge: McpBridge | None = None  # None when no server is configured

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()


def load_mcp_tools(settings: Settings) -> McpToolset:
    """Blocks for at most about MCP_CONNECT_TIMEOUT_SECONDS, however many servers are
    down: they are tried at once, and those not up in time are left out."""
    if not settings.mcp_servers:
        return McpToolset([])
    bridge = McpBridge(
        settings.mcp_servers,
        connect_timeout=settings.mcp_connect_timeout_seconds,
        call_timeout=settings.mcp_call_timeout_seconds,
    ).start()
    discovered = bridge.discover()
    reachable = tuple(found.server.name for found in discovered)
    return McpToolset(mcp_tools(bridge, discovered), reachable, bridge)
