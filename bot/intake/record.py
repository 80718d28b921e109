"""Persist an incoming request before the ack; queue it after.

The row is committed first, so an acknowledged request is never lost; the ack goes out
right after, and the request is handed to the queuer (request_queuer.py), which queues it
within milliseconds without holding up the ack. If queueing fails (Redis down) or the
process dies before it, the row stays 'received' and `requeue_stranded`, run by every
listener's sweeper, queues it later. Slack's retries of one event share its event_id,
which the unique key turns into a no-op, so a retry never produces a second reply.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from bot.db import AsyncPool
from bot.intake.request_queuer import RequestQueuer
from bot.queue.jobs import Enqueue

log = structlog.get_logger(__name__)

REQUEUE_BATCH = 100


async def record_request(
    pool: AsyncPool,
    queuer: RequestQueuer,
    *,
    tenant_id: int,
    external_id: str,
    kind: str,
    payload: dict[str, Any],
    retry_count: int,
    correlation_id: str,
) -> int | None:
    """Commit the request's row and hand it to the queuer; its id, or None for a retry of
    a request we already have."""
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
        return None
    request_id: int = row["id"]
    queuer.submit(request_id, kind, correlation_id)
    log.info("request.recorded", request_id=request_id, kind=kind, tenant_id=tenant_id)
    return request_id


async def requeue_stranded(pool: AsyncPool, enqueue: Enqueue, older_than: float) -> int:
    """Queue requests stored more than `older_than` seconds ago but never queued; return
    how many."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """SELECT id, kind, correlation_id FROM inbound_requests
                   WHERE status = 'received'
                     AND received_at < now() - make_interval(secs => %s)
                   ORDER BY received_at LIMIT %s""",
                (older_than, REQUEUE_BATCH),
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
