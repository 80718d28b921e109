"""An MCP `tools/call` result as our tool result: the text the model reads, and the
structured content when the server gave one."""

from __future__ import annotations

from typing import Any

from mcp import types

# A tool result is shown to the model and stored with the action; a server returning a
# whole document must not fill the prompt.
MAX_TEXT_CHARS = 20_000


def result_text(result: types.CallToolResult) -> str:
    text = "\n".join(_block_text(block) for block in result.content)
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS] + f"\n[… cut at {MAX_TEXT_CHARS} characters]"
    return text


def as_tool_result(result: types.CallToolResult) -> dict[str, Any]:
    output: dict[str, Any] = {"text": result_text(result)}
    if result.structuredContent is not None:
        output["structured"] = result.structuredContent
    return output


def error_message(result: types.CallToolResult) -> str:
    """What the server said went wrong, for the model and for people."""
    return result_text(result).strip() or "the tool reported an error without saying why"


def _block_text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.EmbeddedResource):
        if isinstance(block.resource, types.TextResourceContents):
            return block.resource.text
        return f"[binary resource {block.resource.uri} omitted]"
    if isinstance(block, types.ResourceLink):
        return f"[resource {block.uri}]"
    # Images and audio cannot be passed on to a text model.
    return f"[{block.type} content omitted]"
