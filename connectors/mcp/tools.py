"""An MCP server's tools as our Tools: the same schema validation, effect and policy as
built-in tools, the call made through the bridge.

Failures follow connectors/tool_errors.py: a read-only or internal tool returns
`{"error": ...}` the model can explain; an approved external call that did not happen is
refused (ActionRefused, the action fails with the reason), and one whose outcome is
unknown propagates, so the job's retry finds the action still executing and, with no way
to check, does not send it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import structlog
from mcp import types
from pydantic import BaseModel

from connectors.mcp.arguments import SchemaError, arguments_model
from connectors.mcp.bridge import Discovered, McpBridge
from connectors.mcp.errors import McpCallError, McpOutcomeUnknown
from connectors.mcp.results import as_tool_result, error_message
from core.mcp_config import McpServerConfig
from core.tools import ActionContext, ActionRefused, Effect, Tool

log = structlog.get_logger(__name__)

SEPARATOR = "__"
# Model providers accept function names of 1-64 characters in [a-zA-Z0-9_-].
NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_000  # every description is in every prompt
MAX_SUMMARY_ARGUMENTS_CHARS = 300
# Sent in the call's `_meta`, so a server that supports it can drop a repeated call.
IDEMPOTENCY_META = "chatops-agent/idempotency-key"


def tool_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{NOT_IN_NAME.sub('_', tool)}"[:MAX_NAME_CHARS]


def mcp_tools(bridge: McpBridge, discovered: Iterable[Discovered]) -> list[Tool]:
    """Our Tools for every discovered MCP tool; one whose name clashes after cleaning, or
    whose schema is not valid JSON Schema, is logged and left out."""
    tools: dict[str, Tool] = {}
    for found in discovered:
        for listed in found.tools:
            name = tool_name(found.server.name, listed.name)
            if name in tools:
                log.error("mcp.tool_name_clash", server=found.server.name, tool=listed.name)
                continue
            try:
                tools[name] = mcp_tool(bridge, found.server, listed)
            except SchemaError:
                log.error("mcp.tool_schema_invalid", server=found.server.name, tool=listed.name)
    return list(tools.values())


def mcp_tool(bridge: McpBridge, server: McpServerConfig, listed: types.Tool) -> Tool:
    name = tool_name(server.name, listed.name)
    effect = server.effect_of(listed.name)
    description = (listed.description or listed.title or listed.name)[:MAX_DESCRIPTION_CHARS]

    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        try:
            result = bridge.call(
                server.name,
                listed.name,
                arguments.model_dump(),
                {IDEMPOTENCY_META: key},
                repeatable=effect is Effect.READ_ONLY,
            )
        except McpCallError as exc:
            log.info("mcp.call_failed", tool=name, error=type(exc).__name__)
            if effect is not Effect.EXTERNAL:
                return {"error": str(exc)}
            if isinstance(exc, McpOutcomeUnknown):
                raise
            raise ActionRefused(str(exc)) from exc
        if result.isError:
            log.info("mcp.tool_error", tool=name)
            if effect is Effect.EXTERNAL:
                raise ActionRefused(error_message(result))
            return {"error": error_message(result)}
        return as_tool_result(result)

    def summarize(arguments: BaseModel) -> str:
        shown = json.dumps(arguments.model_dump(), ensure_ascii=False)
        if len(shown) > MAX_SUMMARY_ARGUMENTS_CHARS:
            shown = shown[:MAX_SUMMARY_ARGUMENTS_CHARS] + "…"
        return f"{listed.title or listed.name} on MCP server {server.name}: {shown}"

    return Tool(
        name=name,
        description=description,
        effect=effect,
        arguments=arguments_model(name, listed.inputSchema),
        run=run,
        summarize=summarize,
    )
