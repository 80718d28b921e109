"""A failure as a few safe words for logs and people.

Exception texts from HTTP clients can carry the server's URL, and a URL can carry a
token; so only what we choose to say about a failure is ever logged or shown.
"""

from __future__ import annotations

import httpx
from mcp.shared.exceptions import McpError


def describe_failure(exc: BaseException) -> str:
    leaf = _first_leaf(exc)
    if isinstance(leaf, TimeoutError):
        return "no answer in time"
    if isinstance(leaf, httpx.HTTPStatusError):
        return f"HTTP {leaf.response.status_code}"
    if isinstance(leaf, httpx.ConnectError):
        return "could not connect"
    if isinstance(leaf, httpx.TransportError):
        return f"connection failed ({type(leaf).__name__})"
    if isinstance(leaf, FileNotFoundError):
        return "command not found"
    if isinstance(leaf, OSError):
        return leaf.strerror or type(leaf).__name__
    if isinstance(leaf, McpError):
        return leaf.error.message
    return type(leaf).__name__


def _first_leaf(exc: BaseException) -> BaseException:
    # anyio task groups wrap the failure that matters in exception groups.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
