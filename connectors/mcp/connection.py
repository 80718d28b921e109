"""One live session with one MCP server.

The SDK's transports and ClientSession are anyio context managers, which must be entered
and left by the same task. So a holder task opens them, hands the initialised session
over, and keeps them open until asked to stop; calls from other tasks on the same loop
use the session meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from core.mcp_config import McpServerConfig

log = structlog.get_logger(__name__)

CLIENT_INFO = types.Implementation(name="chatops-agent", version="1")
MAX_TOOL_PAGES = 50  # a server whose cursor never ends must not hang discovery
CLOSE_TIMEOUT_SECONDS = 5.0  # a stdio server gets the SDK's own 2 s to exit, then a kill
# Long-lived streams (server-sent events) may stay quiet for a while; our own per-call
# timeout (MCP_CALL_TIMEOUT_SECONDS) bounds how long a caller waits.
HTTP_READ_TIMEOUT_SECONDS = 300.0

Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]
]


@dataclass
class McpConnection:
    server: McpServerConfig
    session: ClientSession
    # Set when the transport reports a failure or the session ends: the connection is
    # dead, and calls in flight on it will get no answer.
    broken: asyncio.Event
    failures: list[BaseException]
    _stop: asyncio.Event
    _holder: asyncio.Task[None]

    @property
    def alive(self) -> bool:
        return not self.broken.is_set()

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._holder), CLOSE_TIMEOUT_SECONDS)
        except Exception:  # it would not stop in time, or failed while stopping
            self._holder.cancel()


@dataclass
class _Watch:
    """What the holder task shares with the connection's users."""

    broken: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[BaseException] = field(default_factory=list)

    async def on_message(self, message: Any) -> None:
        # The SDK hands transport failures (a refused HTTP connection, a server that
        # answered garbage) to the message handler instead of to the waiting request,
        # which would otherwise wait for its answer until the timeout.
        if isinstance(message, Exception):
            self.failures.append(message)
            self.broken.set()


async def connect(server: McpServerConfig, connect_timeout: float) -> McpConnection:
    """An initialised session with `server`; raises if it does not come up in time."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[ClientSession] = loop.create_future()
    stop = asyncio.Event()
    watch = _Watch()
    holder = asyncio.create_task(_hold(server, connect_timeout, ready, stop, watch))
    try:
        session = await asyncio.wait_for(asyncio.shield(ready), connect_timeout)
    except BaseException:
        holder.cancel()
        raise
    return McpConnection(server, session, watch.broken, watch.failures, stop, holder)


async def _hold(
    server: McpServerConfig,
    connect_timeout: float,
    ready: asyncio.Future[ClientSession],
    stop: asyncio.Event,
    watch: _Watch,
) -> None:
    try:
        async with (
            _transport(server, connect_timeout) as (read, write),
            ClientSession(
                read, write, message_handler=watch.on_message, client_info=CLIENT_INFO
            ) as session,
        ):
            await session.initialize()
            ready.set_result(session)
            await stop.wait()
    except Exception as exc:
        if not ready.done():
            ready.set_exception(exc)
        else:
            watch.failures.append(exc)
            log.warning("mcp.session_ended", server=server.name, error=type(exc).__name__)
    finally:
        watch.broken.set()


def _transport(
    server: McpServerConfig, connect_timeout: float
) -> AbstractAsyncContextManager[Streams]:
    if server.transport == "stdio":
        assert server.command is not None  # McpServerConfig checks it
        parameters = StdioServerParameters(
            command=server.command,
            args=server.args,
            env={name: value.get_secret_value() for name, value in server.env.items()} or None,
            cwd=server.cwd,
        )
        return stdio_client(parameters)
    return _streamable_http(server, connect_timeout)


@asynccontextmanager
async def _streamable_http(
    server: McpServerConfig, connect_timeout: float
) -> AsyncIterator[Streams]:
    assert server.url is not None  # McpServerConfig checks it
    headers = {name: value.get_secret_value() for name, value in server.headers.items()}
    timeout = httpx.Timeout(HTTP_READ_TIMEOUT_SECONDS, connect=connect_timeout)
    async with (
        httpx.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(server.url, http_client=client) as (read, write, _session_id),
    ):
        yield read, write


async def list_all_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool the server offers, following `nextCursor` page by page."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools
    log.warning("mcp.tool_pages_truncated", pages=MAX_TOOL_PAGES)
    return tools
