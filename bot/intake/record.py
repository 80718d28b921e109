"""Persist an incoming request before the ack; queue it after.

The row is committed first, so an acknowledged request is never lost; the ack goes out
right after, and the request is handed to the queuer (request_queuer.py), which queues it
within milliseconds without holding up the ack. If queueing fails (Redis down) or the
process dies before it, the row stays 'received' and the workers' periodic sweep
(bot/queue/stranded.py) queues it later. Slack's retries of one event share its event_id,
which the unique key turns into a no-op, so a retry never produces a second reply.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.response import BoltResponse

from bot.intake.request_queuer import RequestQueuer
from core.db import AsyncPool, is_unavailable
from core.store import requests
from guardrails.at_rest import AtRest

log = structlog.get_logger(__name__)

# Seconds a Slack request may wait for a database connection: Slack gives up on an answer
# after 3, and a quick 503 tells it to retry where a hang would only time out.
STORE_TIMEOUT = 2.0
# Card numbers, SSNs, IBANs and secrets are masked for good before the row is written
# (guardrails/at_rest.py); build_slack_app passes one with the deployment's policy cache.
DEFAULT_AT_REST = AtRest()


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
    at_rest: AtRest = DEFAULT_AT_REST,
) -> int | None:
    """Commit the request's row, with what the tenant masks for good masked, and hand it
    to the queuer; its id, or None for a retry of a request we already have."""
    async with pool.connection() as conn:
        payload = await at_rest.mask_slack_payload(conn, tenant_id, payload)
        request_id = await requests.add_async(
            conn,
            requests.NewRequest(
                tenant_id=tenant_id,
                source="slack",
                external_id=external_id,
                kind=kind,
                payload=payload,
                retry_count=retry_count,
                correlation_id=correlation_id,
            ),
        )
    if request_id is None:
        log.info("request.duplicate", external_id=external_id, retry_count=retry_count)
        return None
    queuer.submit(request_id, kind, correlation_id)
    log.info("request.recorded", request_id=request_id, kind=kind, tenant_id=tenant_id)
    return request_id


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
