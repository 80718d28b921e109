"""Queue stored requests for the agent after the listener has answered, in small batches.

Neither Slack's ack nor an email's 250 waits for Redis: once a request's row is committed
the answer goes out, and the request is handed here and queued within tens of
milliseconds, a batch per thread hand-off and one status update (one commit) per batch.
If Redis or Postgres fails, or the process dies first, the requests stay 'received' and the
workers' periodic sweep queues them later (bot/queue/stranded.py); a request queued twice
is harmless, as the worker skips finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import structlog
from opentelemetry import context as otel_context

from bot.observability.tracing import context_from_carrier, current_trace_carrier
from bot.queue.jobs import Enqueue
from core.db import AsyncPool
from core.store import requests

log = structlog.get_logger(__name__)

# Seconds a batch may fill after its first request: invisible next to an agent run, and
# under load it turns a commit per message into a commit per batch.
BATCH_WAIT = 0.025
MAX_BATCH = 200  # requests per batch


# A request id, its kind, its correlation id, and the trace context it was submitted in.
Pending = tuple[int, str, str, dict[str, str]]


# What a batch's enqueues run inside: core.broker.one_round_trip sends them together.
Together = Callable[[], AbstractContextManager[object]]


class RequestQueuer:
    def __init__(
        self,
        pool: AsyncPool,
        enqueue: Enqueue,
        *,
        timeout: float,
        together: Together = contextlib.nullcontext,
    ) -> None:
        self.pool = pool
        self.enqueue = enqueue
        self.together = together
        self.timeout = timeout
        self._pending: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, request_id: int, kind: str, correlation_id: str) -> None:
        """Queue a committed request soon; returns at once."""
        # The request's trace context is captured now: the batch is queued later, from
        # another task, where the request's span is no longer current.
        self._pending.put_nowait((request_id, kind, correlation_id, current_trace_carrier()))

    async def close(self, timeout: float) -> None:
        """Queue what is pending (for at most `timeout` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._pending.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            await asyncio.sleep(BATCH_WAIT)
            while not self._pending.empty() and len(batch) < MAX_BATCH:
                batch.append(self._pending.get_nowait())
            try:
                await self._queue(batch)
            except Exception:
                log.exception("request.enqueue_failed", request_ids=[r for r, *_ in batch])
            finally:
                for _ in batch:
                    self._pending.task_done()

    async def _queue(self, batch: list[Pending]) -> None:
        def send_all() -> None:
            with self.together():
                for request_id, kind, correlation_id, carrier in batch:
                    token = otel_context.attach(context_from_carrier(carrier))
                    try:
                        self.enqueue(request_id, kind, correlation_id)
                    finally:
                        otel_context.detach(token)

        # The broker client is blocking; a thread keeps the event loop free.
        await asyncio.to_thread(send_all)
        async with self.pool.connection(timeout=self.timeout) as conn:
            await requests.mark_queued_async(conn, [request_id for request_id, *_ in batch])
