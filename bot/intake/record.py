"""Persist an incoming request, then queue it: the only work done before Slack's ack.

The row is written first, so an acknowledged request is never lost. Queueing comes
second and may fail (Redis down): the row stays 'received' and `requeue_stranded` sends
it later. Slack's retries of one event share its event_id, which the unique key turns
into a no-op, so a retry never produces a second reply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from bot.db import AsyncPool
from bot.queue.jobs import Enqueue

log = structlog.get_logger(__name__)

STRANDED_AFTER = 30  # seconds a request may wait in 'received' before it is re-queued
REQUEUE_BATCH = 100


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


async def requeue_stranded(pool: AsyncPool, enqueue: Enqueue) -> int:
    """Queue requests that were stored but never queued; return how many."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """SELECT id, kind, correlation_id FROM inbound_requests
                   WHERE status = 'received'
                     AND received_at < now() - make_interval(secs => %s)
                   ORDER BY received_at LIMIT %s""",
                (STRANDED_AFTER, REQUEUE_BATCH),
            )
        ).fetchall()
        for row in rows:
            await asyncio.to_thread(enqueue, row["id"], row["kind"], row["correlation_id"])
            await conn.execute(
                "UPDATE inbound_requests SET status = 'queued', queued_at = now() WHERE id = %s",
                (row["id"],),
            )
    if rows:
        log.warning("request.requeued_stranded", count=len(rows))
    return len(rows)
