"""`chatops worker` with MCP servers configured: it discovers their tools at start, starts
even when one is down, and stops its stdio servers when it stops."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.markers import new_marker
from tests.connectors.mcp.conftest import (
    CallLog,
    free_port,
    http_server_config,
    servers_recording_to,
    stdio_server,
)
from tests.support.processes import ChatopsProcess, wait_for


def test_a_worker_offers_mcp_tools_and_starts_despite_a_down_server(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The worker logs the tools it found and the server it could not reach, then runs."""
    log = CallLog(tmp_path / "calls.jsonl")
    servers = [
        stdio_server("orders", log),
        http_server_config("crm", f"http://127.0.0.1:{free_port()}/mcp"),
    ]
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # Its own queues: this worker must not take other tests' jobs.
        "QUEUE_NAMESPACE": f"mcp-{new_marker(8)}",
        "SLACK_SIGNING_SECRET": "mcp-worker-test",
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": "",
        "WORKER_THREADS": "1",
        "WORKER_METRICS_PORT": "",
        "LOG_FORMAT": "json",
        "MCP_SERVERS": json.dumps(servers),
        "MCP_CONNECT_TIMEOUT_SECONDS": "5",
    }
    worker = ChatopsProcess(["worker"], env, tmp_path / "worker.log")

    worker.start(ready_line="worker.started")
    try:
        events = [
            json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")
        ]
        server_pids = servers_recording_to(log.path)
    finally:
        worker.stop()

    found = {e["server"]: e for e in events if e["event"] == "mcp.tools_discovered"}
    missed = {e["server"]: e for e in events if e["event"] == "mcp.server_unavailable"}
    assert found["orders"]["tools"] == ["lookup_order", "refund_order"]
    assert missed["crm"]["reason"] == "could not connect"
    assert len(server_pids) == 1
    # Stopping the worker closes the session, and the stdio server exits with it.
    wait_for(lambda: not servers_recording_to(log.path), timeout=10)
