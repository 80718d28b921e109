"""The listener answers Slack once the request is committed and queues it just after; a
listener that dies in between loses nothing: the workers' periodic sweep queues the
request."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from testbed.conversation import (
    bot_replies,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from testbed.processes import ChatopsProcess
from testbed.stack import Stack, free_port

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server takes connections and never answers: queueing hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def _serve(stack: Stack, env: dict[str, str], name: str) -> tuple[ChatopsProcess, str]:
    port = free_port()
    process = ChatopsProcess(["serve", "--port", str(port)], env, stack.log_dir / f"{name}.log")
    process.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    return process, f"http://127.0.0.1:{port}/slack/events"


def test_a_listener_killed_after_the_ack_loses_nothing(
    stack: Stack, llm: Any, db: DB, silent_redis: str
) -> None:
    """Slack has its 200 and the row is committed; the listener dies before it could queue
    the request. The workers' sweep queues it, and the person gets their answer."""
    question = unique_question("Can I change my delivery address?")
    script_answer(llm, question, "Yes, until the parcel ships.")
    doomed, doomed_url = _serve(stack, stack.env | {"REDIS_URL": silent_redis}, "serve-doomed")
    stack.slack.events_url = doomed_url
    try:
        post = mention(stack.slack, question)
    finally:
        stack.slack.events_url = stack.events_url
    assert [d.status for d in post.deliveries] == [200]
    row = db.execute(
        "SELECT status FROM inbound_requests WHERE external_id = %s",
        (post.deliveries[0].event_id,),
    ).fetchone()
    assert row == {"status": "received"}  # committed, not queued: Redis never answered

    doomed.kill()  # dies with the request still unqueued

    # A worker that sweeps often; no listener is needed for the request to be queued.
    sweeping = stack.env | {
        "STRANDED_AFTER_SECONDS": "1",
        "SWEEP_INTERVAL_SECONDS": "0.5",
        "SCHEDULER_TICK_SECONDS": "0.2",
        "WORKER_METRICS_PORT": str(free_port()),
    }
    sweeper = ChatopsProcess(["worker"], sweeping, stack.log_dir / "worker-sweeping.log")
    sweeper.start(ready_line="worker.started")
    try:
        answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)
    finally:
        sweeper.stop()
    assert "Yes, until the parcel ships." in answer.text
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
