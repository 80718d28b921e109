"""Screening MCP tool definitions before the model sees them.

A server's tool description, title and the descriptions inside its inputSchema are
third-party text that goes into every prompt as if it were ours, so unlike a tool's
results (screened and wrapped as untrusted content per call) it is screened once, at
discovery: a tool whose words try to instruct the model is left out altogether. The
screen is the product's prompt-injection screen (guardrails/injection.py), the same one
that judges emails and documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from mcp import types

from connectors.mcp.bridge import Discovered
from guardrails.injection import InjectionScreen

log = structlog.get_logger(__name__)

# Schema keywords whose values are words meant for a reader (and so for the model).
PROSE_KEYWORDS = ("description", "title")
MAX_WHERE_CHARS = 80  # a property path in a log line is the server's text too


@dataclass(frozen=True)
class RejectedTool:
    """A discovered tool that is not offered, and why in our words (never its text)."""

    server: str
    tool: str
    reason: str


def screen_discovered(
    discovered: Iterable[Discovered], screen: InjectionScreen
) -> tuple[list[Discovered], list[RejectedTool]]:
    """Each server's tools without the flagged ones, and the flagged ones."""
    kept: list[Discovered] = []
    rejected: list[RejectedTool] = []
    for found in discovered:
        offered = []
        for listed in found.tools:
            reason = rejection_reason(listed, screen)
            if reason is None:
                offered.append(listed)
                continue
            rejected.append(RejectedTool(found.server.name, listed.name, reason))
            log.warning(
                "mcp.tool_rejected", server=found.server.name, tool=listed.name, reason=reason
            )
        kept.append(Discovered(found.server, offered))
    return kept, rejected


def rejection_reason(listed: types.Tool, screen: InjectionScreen) -> str | None:
    """Where the tool's definition tries to instruct the model and how, or None."""
    for where, text in tool_prose(listed):
        verdict = screen.screen(text)
        if verdict.flagged:
            return f"{where[:MAX_WHERE_CHARS]}: possible prompt injection ({verdict.summary()})"
    return None


def tool_prose(listed: types.Tool) -> Iterator[tuple[str, str]]:
    """Every piece of the definition's text the model reads, with where it is."""
    if listed.description:
        yield "description", listed.description
    if listed.title:
        yield "title", listed.title
    yield from _schema_prose(listed.inputSchema, "inputSchema")


def _schema_prose(node: Any, where: str) -> Iterator[tuple[str, str]]:
    # The whole schema, not only `properties`: $defs, items and anyOf branches reach the
    # prompt just the same.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PROSE_KEYWORDS and isinstance(value, str):
                yield f"{where}.{key}", value
            else:
                yield from _schema_prose(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schema_prose(value, f"{where}[{index}]")
