"""What can go wrong calling an MCP server, sorted by what matters for exactly-once:
whether the call can have taken effect."""

from __future__ import annotations


class McpCallError(Exception):
    """Root of this package's call errors; the message is written for people."""


class McpUnavailable(McpCallError):
    """The server could not be reached, so the call was not sent: nothing happened."""


class McpRefused(McpCallError):
    """The server answered the request with a protocol error (an unknown tool, invalid
    parameters): it did not run the tool."""


class McpOutcomeUnknown(McpCallError):
    """The call was sent but no answer came back (a timeout, a dropped connection): it
    may or may not have taken effect, so it must not simply be sent again."""
