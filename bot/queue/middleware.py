"""The worker's Dramatiq middleware: each job runs inside its request's log context and
trace (a span parented to the listener's), and is counted and timed.

Dramatiq ships a Prometheus middleware, but it registers on the global registry and
forks its own exposition server from the worker's boot hook; ours takes the process's
`Metrics` explicitly, and the worker serves that registry itself.
"""

from __future__ import annotations

import threading
import time
from contextvars import Token
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracer, Span, SpanKind, StatusCode, Tracer

from bot.observability.tracing import TRACE_OPTION, context_from_carrier
from core.correlation import LOG_KEY, MESSAGE_OPTION
from core.metrics import Metrics
from core.warmup import Warming

log = structlog.get_logger(__name__)

# Bound for the whole job, so every log line of it says which job and request it served.
JOB_LOG_KEYS = (LOG_KEY, "job_id", "actor")


@dataclass(frozen=True)
class RunningJob:
    started: float  # monotonic
    span: Span
    context_token: Token[Context]  # detaches the job's trace context from the worker thread


class JobObservability(Middleware):
    def __init__(self, metrics: Metrics, tracer: Tracer | None = None) -> None:
        self.metrics = metrics
        self.tracer = tracer if tracer is not None else NoOpTracer()
        self._running: dict[str, RunningJob] = {}  # by message id
        self._lock = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.bind_contextvars(
            **{
                LOG_KEY: message.options.get(MESSAGE_OPTION),
                "job_id": message.message_id,
                "actor": message.actor_name,
            }
        )
        # A retry keeps the message's first timestamp: its wait would include the backoff.
        if not message.options.get("retries"):
            waited = max(0.0, time.time() - message.message_timestamp / 1000)
            self.metrics.job_wait_seconds.labels(_queue(message)).observe(waited)
        span = self.tracer.start_span(
            f"job {message.actor_name}",
            context=context_from_carrier(message.options.get(TRACE_OPTION)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.destination.name": _queue(message),
                "job.id": message.message_id,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._running[message.message_id] = RunningJob(time.monotonic(), span, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._finish(message, "ok" if exception is None else "failed", exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._finish(message, "skipped", None)

    def _finish(self, message: Any, outcome: str, exception: BaseException | None) -> None:
        with self._lock:
            job = self._running.pop(message.message_id, None)
        queue = _queue(message)
        self.metrics.jobs.labels(queue, message.actor_name, outcome).inc()
        if job is not None:
            elapsed = time.monotonic() - job.started
            self.metrics.job_seconds.labels(queue, message.actor_name).observe(elapsed)
            if exception is not None:
                job.span.record_exception(exception)
                job.span.set_status(StatusCode.ERROR)
            job.span.end()
            otel_context.detach(job.context_token)
        structlog.contextvars.unbind_contextvars(*JOB_LOG_KEYS)


def _queue(message: Any) -> str:
    # Retried messages come back through the delay queue ("agent.DQ"); count them as "agent".
    name: str = message.queue_name
    return name.removesuffix(".DQ")


class AfterWarmUp(Middleware):
    """Holds each job until `loading` (the worker's PII detector, loading in the background
    after the worker is ready) has finished, before the job's time limit and timers start:
    a job's time limit is for its own work, not for the worker's start. Added ahead of
    Dramatiq's TimeLimit. The screens wait for the detector themselves too (the scheduler's
    work does not pass through here); a detector that failed to load is raised there."""

    def __init__(self, loading: Warming[Any]) -> None:
        self.loading = loading

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.loading.wait()
