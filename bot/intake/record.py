"""Persist an incoming request, then queue it: the only work done before Slack's ack.

The row is written first, so an acknowledged request is never lost. Queueing comes
second and may fail (Redis down): the row stays 'received' and the workers' sweep
(bot/queue/stranded.py) queues it later. Slack's retries of one event share its event_id, which the unique key turns
into a no-op, so a retry never produces a second reply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg.types.json import Jsonb
from slack_bolt.response import BoltResponse

from bot.db import AsyncPool, is_unavailable
from bot.queue.jobs import Enqueue

log = structlog.get_logger(__name__)

# Seconds a Slack request may wait for a database connection: Slack gives up on an answer
# after 3, and a quick 503 tells it to retry where a hang would only time out.
STORE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Recorded:
    request_id: int | None  # None: a retry of a request we already have
    queued: bool


async def record_and_enqueue(
    pool: AsyncPool,
    enqueue: Enqueue,
    *,
    tenant_id: int,
    external_id: str,
    kind: str,
    payload: dict[str, Any],
    retry_count: int,
    correlation_id: str,
) -> Recorded:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """INSERT INTO inbound_requests
                     (tenant_id, source, external_id, kind, payload, retry_count,
                      correlation_id)
                   VALUES (%s, 'slack', %s, %s, %s, %s, %s)
                   ON CONFLICT (tenant_id, source, external_id) DO NOTHING
                   RETURNING id""",
                (tenant_id, external_id, kind, Jsonb(payload), retry_count, correlation_id),
            )
        ).fetchone()
        if row is None:
            log.info("request.duplicate", external_id=external_id, retry_count=retry_count)
            return Recorded(request_id=None, queued=False)
        request_id: int = row["id"]
        try:
            # The broker client is blocking; a thread keeps the event loop free.
            await asyncio.to_thread(enqueue, request_id, kind, correlation_id)
        except Exception:
            log.exception("request.enqueue_failed", request_id=request_id)
            return Recorded(request_id=request_id, queued=False)
        await conn.execute(
            "UPDATE inbound_requests SET status = 'queued', queued_at = now()"
            " WHERE id = %s AND status = 'received'",
            (request_id,),
        )
    log.info("request.recorded", request_id=request_id, kind=kind, tenant_id=tenant_id)
    return Recorded(request_id=request_id, queued=True)


async def answer_unhandled_error(error: Exception) -> BoltResponse | None:
    """Bolt's error handler. A request that could not be stored because the database is
    unreachable gets a quick 503: Slack retries it (with the same event_id, so a retry
    that finds it stored is a no-op), and nothing is acknowledged that is not stored.
    Anything else keeps Bolt's 500, logged with its traceback."""
    if is_unavailable(error):
        log.warning("slack.storage_unavailable", error=type(error).__name__)
        return BoltResponse(status=503, body="storage unavailable, retry later")
    log.error("slack.listener_failed", exc_info=error)
    return None
