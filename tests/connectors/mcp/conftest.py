"""Real MCP servers for the tests (orders_server.py, over stdio and over streamable HTTP),
the platform's MCP toolset connected to them, and a tenant whose registry offers it."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from connectors.mcp.toolset import McpToolset, load_mcp_tools
from core.db import Pool
from core.settings import Settings
from core.tools import ToolRegistry
from tests.connectors.workspace import Workspace, connector_settings, make_workspace, pool

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

SERVER_SCRIPT = Path(__file__).with_name("orders_server.py")
EFFECTS = {"lookup_order": "read_only"}  # refund_order is left to the default: external


@dataclasses.dataclass(frozen=True)
class CallLog:
    """What the server saw: one entry per `tools/call` request that reached it."""

    path: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def clear(self) -> None:
        self.path.write_text("")


@dataclasses.dataclass(frozen=True)
class HttpServer:
    url: str
    log: CallLog
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_http_server(port: int, log: CallLog) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--record", str(log.path), "--port", str(port)]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _answers_http(port):
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the MCP test server did not start answering")


def _answers_http(port: int) -> bool:
    """Whether the server answers HTTP on /mcp (any status): accepting the connection
    alone can come before the app serves, and a call made then fails as unreachable."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return connection.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def servers_recording_to(record: Path) -> list[int]:
    """The pids of the stdio test servers writing to `record` (a path unique to this run)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # not a process, or it is gone
        if str(record).encode() in arguments and entry.name.isdigit():
            pids.append(int(entry.name))
    return pids


def stdio_server(name: str, log: CallLog, *, poisoned: bool = False) -> dict[str, Any]:
    """`poisoned`: the server also lists tools whose definitions carry prompt injections."""
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": [
            str(SERVER_SCRIPT),
            "--record",
            str(log.path),
            *(["--poisoned"] if poisoned else []),
        ],
        "effects": EFFECTS,
    }


def http_server_config(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "transport": "streamable_http", "url": url, "effects": EFFECTS}


def mcp_settings(database_url: str, servers: list[dict[str, Any]], **overrides: Any) -> Settings:
    return connector_settings(database_url, mcp_servers=json.dumps(servers), **overrides)


@pytest.fixture(scope="module")
def stdio_log(tmp_path_factory: pytest.TempPathFactory) -> CallLog:
    return CallLog(tmp_path_factory.mktemp("mcp-stdio") / "calls.jsonl")


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    log = CallLog(tmp_path_factory.mktemp("mcp-http") / "calls.jsonl")
    port = free_port()
    process = start_http_server(port, log)
    yield HttpServer(f"http://127.0.0.1:{port}/mcp", log, process)
    stop(process)


@pytest.fixture(scope="module")
def toolset(database_url: str, stdio_log: CallLog, http_server: HttpServer) -> Iterator[McpToolset]:
    """What a worker loads at start: the stdio server `orders` and the HTTP server `desk`."""
    settings = mcp_settings(
        database_url,
        [stdio_server("orders", stdio_log), http_server_config("desk", http_server.url)],
    )
    loaded = load_mcp_tools(settings)
    yield loaded
    loaded.close()


@pytest.fixture
def logs(stdio_log: CallLog, http_server: HttpServer) -> dict[str, CallLog]:
    """Each server's call log, emptied for this test."""
    stdio_log.clear()
    http_server.log.clear()
    return {"orders": stdio_log, "desk": http_server.log}


@pytest.fixture(scope="module")
def new_workspace(
    pool: Pool, database_url: str, toolset: McpToolset
) -> Iterator[Callable[[], Workspace]]:
    registry = ToolRegistry.of(*toolset.tools)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        make = make_workspace(conn, pool, database_url)
        yield lambda: dataclasses.replace(make(), registry=registry)


@pytest.fixture
def workspace(new_workspace: Callable[[], Workspace]) -> Workspace:
    """A new tenant whose agent is offered the MCP tools, and nothing else."""
    return new_workspace()
