"""`chatops mcp tools`: connect to the configured MCP servers (MCP_SERVERS) as a worker
would at start, and list the tools the agent would be offered, each with its effect, so
an admin can check the configuration before starting workers. Tools whose definitions
the injection screen flags are listed as rejected, with the reason."""

from __future__ import annotations

import argparse

from core.settings import Settings

HELP = "list the tools the configured MCP servers offer, with their effects"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="mcp_action", required=True)
    actions.add_parser("tools", help=HELP)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.mcp.toolset import load_mcp_tools

    if not settings.mcp_servers:
        print("No MCP servers configured (MCP_SERVERS is empty).")
        return 0
    toolset = load_mcp_tools(settings)
    try:
        width = max((len(tool.name) for tool in toolset.tools), default=0)
        for tool in sorted(toolset.tools, key=lambda tool: tool.name):
            print(f"{tool.name:<{width}}  {tool.effect.value:<9}  {tool.description}")
        print(f"{len(toolset.tools)} tool(s) from {len(toolset.reachable)} server(s)")
        for rejected in toolset.rejected:
            print(f"{rejected.server}: {rejected.tool} rejected, not offered: {rejected.reason}")
        down = [s.name for s in settings.mcp_servers if s.name not in toolset.reachable]
        for name in down:
            # The reason is in the log line mcp.server_unavailable above.
            print(f"{name}: unreachable, no tools (see the log)")
    finally:
        toolset.close()
    # Non-zero when anything configured is not offered, so a deploy check notices.
    return 1 if down or toolset.rejected else 0
