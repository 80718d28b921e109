"""Model calls name the request they serve in an X-Request-Id header."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog

from core.llm.providers import CallRecord, build_chain

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "model-a",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "{}"}}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class RecordingServer(ThreadingHTTPServer):
    request_ids: list[str | None]


class CompletionHandler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.request_ids.append(self.headers.get("X-Request-Id"))
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: the test reads what the server recorded instead."""


@pytest.fixture
def provider() -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), CompletionHandler)
    server.request_ids = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_model_calls_carry_the_bound_request_id(provider: RecordingServer) -> None:
    """Inside a request the header carries its id; outside one, no header is sent."""
    port = provider.server_address[1]
    chain = build_chain(
        [("primary", f"http://127.0.0.1:{port}/v1", "k", "model-a")],
        timeout=5,
        max_retries=0,
        circuit_failures=5,
        circuit_reset=60,
    )
    calls: list[CallRecord] = []
    messages = [{"role": "user", "content": "hi"}]

    with structlog.contextvars.bound_contextvars(correlation_id="abc123"):
        chain.complete(messages, response_format={"type": "json_object"}, on_call=calls.append)
    chain.complete(messages, response_format={"type": "json_object"}, on_call=calls.append)

    assert provider.request_ids == ["abc123", None]
