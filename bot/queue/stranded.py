"""Requests that should be moving and are not: queue them again.

A request is stranded when it is still open ('received', 'queued' or 'running'), was
last queued longer ago than the bound, and the broker holds no job for it: stored while
Redis was down, queued in a Redis that was lost or flushed, or left 'running' by a job
that vanished with it. Queueing it again is safe: the job takes its request's lock,
skips finished requests, replays stored steps and edits its one reply, so a request
queued twice still gets one reply.

Where the broker cannot be read (RabbitMQ), 'received' requests are queued again after
the bound as before, and 'queued' or 'running' ones only after `UNREADABLE_BROKER_BOUND`,
longer than any job's whole retry budget.
"""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import structlog

from bot.queue.census import queued_jobs, readable
from bot.queue.jobs import enqueue_request
from core.db import Conn
from core.store import requests

log = structlog.get_logger(__name__)

BATCH = 200  # requests queued again per sweep, at most
# A run may take 4 attempts of up to 3 minutes with backoff between, then its apology.
UNREADABLE_BROKER_BOUND = timedelta(minutes=30)


def requeue_stranded(conn: Conn, broker: dramatiq.Broker, *, after: timedelta) -> int:
    """Queue the stranded requests again; returns how many."""
    can_tell = readable(broker)
    rows = requests.stranded(
        conn,
        after=after,
        # Never shorter than `after`, which the query's first bound relies on.
        after_queued=after if can_tell else max(after, UNREADABLE_BROKER_BOUND),
        batch=BATCH,
    )
    if not rows:
        return 0  # the usual case: the broker is not read at all
    census = queued_jobs(broker)
    queued = census.requests if census is not None else frozenset()
    requeued = 0
    for row in rows:
        if row["id"] in queued:
            continue  # waiting its turn, in a worker's hands, or between retries
        enqueue_request(broker, row["id"], row["kind"], row["correlation_id"])
        requests.mark_requeued(conn, row["id"])
        log.warning("request.requeued", request_id=row["id"], was=row["status"])
        requeued += 1
    return requeued
