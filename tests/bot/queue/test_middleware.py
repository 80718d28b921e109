"""Each job runs inside its request's log context, and is counted and timed by outcome."""

from __future__ import annotations

import dramatiq
import pytest
import structlog
from dramatiq.brokers.stub import StubBroker
from structlog.testing import capture_logs

from bot.queue.middleware import JobObservability
from core.metrics import Metrics


@pytest.fixture
def broker() -> StubBroker:
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_jobs_log_with_their_request_id_and_are_counted(broker: StubBroker) -> None:
    """A job's log lines carry the correlation id of its message; ok and failed jobs are
    counted apart, and nothing stays bound after the job."""
    metrics = Metrics.create()
    broker.add_middleware(JobObservability(metrics))
    seen: list[dict[str, object]] = []

    def answer(request_id: int) -> None:
        structlog.get_logger().info("answering", request_id=request_id)
        seen.append(dict(structlog.contextvars.get_contextvars()))
        if request_id == 2:
            raise RuntimeError("model down")

    dramatiq.Actor(
        answer,
        broker=broker,
        actor_name="run_request",
        queue_name="agent",
        priority=0,
        options={"max_retries": 0},
    )
    for request_id, correlation_id in ((1, "aaa"), (2, "bbb")):
        broker.enqueue(
            dramatiq.Message(
                queue_name="agent",
                actor_name="run_request",
                args=(request_id,),
                kwargs={},
                options={"correlation_id": correlation_id},
            )
        )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        worker.start()
        broker.join("agent", fail_fast=False)
        worker.join()
        worker.stop()

    answering = [entry for entry in logs if entry["event"] == "answering"]
    assert [(e["request_id"], e["correlation_id"]) for e in answering] == [(1, "aaa"), (2, "bbb")]
    assert all(entry["actor"] == "run_request" for entry in answering)
    job = {"queue": "agent", "actor": "run_request"}
    assert sample(metrics, "chatops_jobs_total", **job, outcome="ok") == 1
    assert sample(metrics, "chatops_jobs_total", **job, outcome="failed") == 1
    assert sample(metrics, "chatops_job_seconds_count", **job) == 2
    assert sample(metrics, "chatops_job_wait_seconds_count", queue="agent") == 2
    # The worker thread's context is clean again once a job is done.
    assert "correlation_id" in seen[0]
    assert not structlog.contextvars.get_contextvars().get("correlation_id")
