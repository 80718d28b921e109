"""The bridge between the worker's threads and the MCP client.

Dramatiq runs jobs on plain threads; the mcp client is asyncio. One event loop, on one
daemon thread per worker process, owns every MCP session: a thread submits a coroutine
with `run_coroutine_threadsafe` and waits for its answer with a timeout. An MCP session
carries concurrent requests, so the process keeps one session per server, shared by all
its threads, instead of one per thread.

A session that has died (the server process exited, an HTTP server restarted and forgot
the session, a connection was refused) is replaced once per call, and the call sent again
only when it cannot have reached the server; a call that was sent and got no answer is
never repeated here (McpOutcomeUnknown), because it may have taken effect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import structlog
from mcp import types
from mcp.shared.exceptions import McpError

from connectors.mcp.connection import (
    CLOSE_TIMEOUT_SECONDS,
    McpConnection,
    connect,
    list_all_tools,
)
from connectors.mcp.errors import McpOutcomeUnknown, McpRefused, McpUnavailable
from connectors.mcp.failures import describe_failure
from core.mcp_config import McpServerConfig

log = structlog.get_logger(__name__)

# The streamable HTTP client's answer to a request on a session the server no longer
# knows (HTTP 404): the server turned it away unread.
SESSION_TERMINATED = 32600
# Extra seconds a thread waits beyond the loop's own timeouts before giving up on it.
THREAD_GRACE_SECONDS = 2.0


class _NotDelivered(Exception):
    """The session was dead before the request got through: safe to send again."""


class _Dropped(Exception):
    """The connection failed after the request was sent: safe to send again only for a
    tool that has no effect (a read)."""


def _refused(failure: BaseException) -> bool:
    if isinstance(failure, BaseExceptionGroup):
        return any(_refused(inner) for inner in failure.exceptions)
    return isinstance(failure, httpx.ConnectError)


@dataclass(frozen=True)
class Discovered:
    server: McpServerConfig
    tools: list[types.Tool]


class McpBridge:
    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        connect_timeout: float,
        call_timeout: float,
    ) -> None:
        self.servers = {server.name: server for server in servers}
        self.connect_timeout = connect_timeout  # seconds, to connect and list tools
        self.call_timeout = call_timeout  # seconds, per tool call
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mcp-bridge", daemon=True
        )
        self._connections: dict[str, McpConnection] = {}
        self._locks = {name: asyncio.Lock() for name in self.servers}

    def start(self) -> McpBridge:
        self._thread.start()
        return self

    def discover(self) -> list[Discovered]:
        """Each reachable server's tools. A server that is down or slower than the connect
        timeout is logged and left out, so a worker never waits long for one at start."""
        future = asyncio.run_coroutine_threadsafe(self._discover_all(), self._loop)
        try:
            return future.result(self.connect_timeout + THREAD_GRACE_SECONDS)
        except TimeoutError:
            future.cancel()
            log.error("mcp.discovery_timed_out", servers=sorted(self.servers))
            return []

    def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any],
        *,
        repeatable: bool = False,
    ) -> types.CallToolResult:
        """The server's answer to one tool call; raises an McpCallError saying whether the
        call can have taken effect. `repeatable` (a read) lets a call that was cut off
        mid-way be sent again on a new session."""
        future = asyncio.run_coroutine_threadsafe(
            self._call(self.servers[server], tool, arguments, meta, repeatable), self._loop
        )
        # Worst case on the loop: connect, send, reconnect, send again.
        limit = 2 * (self.connect_timeout + self.call_timeout) + THREAD_GRACE_SECONDS
        try:
            return future.result(limit)
        except TimeoutError:
            future.cancel()
            raise McpOutcomeUnknown(
                f"MCP server {server} did not answer within {limit:.0f} s"
            ) from None

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        closing = asyncio.run_coroutine_threadsafe(self._close_all(), self._loop)
        try:
            closing.result(CLOSE_TIMEOUT_SECONDS + THREAD_GRACE_SECONDS)  # all at once
        except TimeoutError:
            log.warning("mcp.close_timed_out")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(THREAD_GRACE_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()

    # --- On the bridge's loop ------------------------------------------------------------

    async def _discover_all(self) -> list[Discovered]:
        servers = list(self.servers.values())
        found = await asyncio.gather(*(self._discover(server) for server in servers))
        return [
            Discovered(server, tools)
            for server, tools in zip(servers, found, strict=True)
            if tools is not None
        ]

    async def _discover(self, server: McpServerConfig) -> list[types.Tool] | None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection = await self._connection(server)
                tools = await list_all_tools(connection.session)
        except Exception as exc:
            # McpUnavailable carries what actually went wrong as its cause.
            failure = exc.__cause__ if isinstance(exc, McpUnavailable) and exc.__cause__ else exc
            log.error(
                "mcp.server_unavailable",
                server=server.name,
                transport=server.transport,
                reason=describe_failure(failure),
                hint="its tools are not offered until the worker restarts",
            )
            return None
        log.info("mcp.tools_discovered", server=server.name, tools=[tool.name for tool in tools])
        return tools

    async def _call(
        self,
        server: McpServerConfig,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any],
        repeatable: bool,
    ) -> types.CallToolResult:
        for attempt in range(2):
            if attempt:
                log.info("mcp.reconnecting", server=server.name)
            connection = await self._connection(server)
            try:
                return await self._send(connection, tool, arguments, meta)
            except _NotDelivered:
                continue
            except _Dropped as exc:
                if not repeatable:
                    raise McpOutcomeUnknown(str(exc)) from None
        raise McpUnavailable(f"MCP server {server.name} is unreachable")

    async def _send(
        self, connection: McpConnection, tool: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> types.CallToolResult:
        name = connection.server.name
        if not connection.alive:
            raise _NotDelivered
        seen = len(connection.failures)
        call = asyncio.ensure_future(connection.session.call_tool(tool, arguments, meta=meta))
        broken = asyncio.ensure_future(connection.broken.wait())
        try:
            done, _ = await asyncio.wait(
                {call, broken}, timeout=self.call_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            broken.cancel()
        if call not in done:
            call.cancel()
            if broken not in done:
                raise McpOutcomeUnknown(
                    f"MCP server {name} did not answer within {self.call_timeout:.0f} s"
                )
            if any(_refused(failure) for failure in connection.failures[seen:]):
                raise _NotDelivered  # the connection was refused: nothing left this machine
            raise _Dropped(f"the connection to MCP server {name} failed before it answered")
        try:
            return call.result()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # Writing into a session whose transport is gone: nothing was sent.
            connection.broken.set()
            raise _NotDelivered from None
        except McpError as exc:
            if exc.error.code == SESSION_TERMINATED:
                connection.broken.set()
                raise _NotDelivered from None
            if exc.error.code == types.CONNECTION_CLOSED:
                connection.broken.set()
                raise _Dropped(
                    f"the connection to MCP server {name} closed before it answered"
                ) from None
            raise McpRefused(f"MCP server {name} refused the call: {exc.error.message}") from None
        except Exception as exc:
            # E.g. a result that does not fit the tool's declared output schema: the call
            # ran, but its answer is unusable.
            raise McpOutcomeUnknown(
                f"MCP server {name} answered unusably ({describe_failure(exc)})"
            ) from None

    async def _connection(self, server: McpServerConfig) -> McpConnection:
        """The server's live session, connecting (again) if there is none."""
        async with self._locks[server.name]:
            current = self._connections.get(server.name)
            if current is not None and current.alive:
                return current
            if current is not None:
                del self._connections[server.name]
                await current.close()
            try:
                connection = await connect(server, self.connect_timeout)
            except Exception as exc:
                raise McpUnavailable(
                    f"MCP server {server.name} is unreachable ({describe_failure(exc)})"
                ) from exc
            self._connections[server.name] = connection
            return connection

    async def _close_all(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(connection.close() for connection in connections))
