"""Series whose truth lives in Redis and Postgres rather than in one process: queue depth
and age, approvals pending, decision latency, guardrail flags.

The HTTP listener reads them when Prometheus scrapes it (`refresh`), so they are correct
whichever process did the work and however many workers run. With several listeners,
each reports the same values: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core.db import AsyncPool

# Seconds from an action being proposed to a person deciding it; approvals expire at 24 h.
DECISION_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


@dataclass(frozen=True)
class QueueState:
    name: str
    waiting: int  # ready for a worker now
    delayed: int  # retries waiting out their backoff
    dead: int  # dead-lettered: `chatops jobs dead` lists them
    oldest_age_seconds: float  # of the oldest waiting message; 0 when none waits


@dataclass(frozen=True)
class StoredState:
    queues: list[QueueState] = field(default_factory=list)
    approvals_pending: dict[int, int] = field(default_factory=dict)  # tenant -> count
    decision_bucket_counts: list[int] = field(default_factory=list)  # cumulative, +Inf last
    decision_seconds_sum: float = 0.0
    guardrail_flags: dict[tuple[str, str], int] = field(default_factory=dict)  # kind, source


async def read_queues(
    redis: aioredis.Redis, namespace: str, queues: Iterable[str], *, now: float | None = None
) -> list[QueueState]:
    """Dramatiq's Redis layout: `<ns>:<q>` lists waiting message ids, `<ns>:<q>.msgs` holds
    their bodies, `<ns>:<q>.DQ.msgs` delayed ones, `<ns>:<q>.XQ` the dead letters."""
    now = time.time() if now is None else now
    states = []
    for name in queues:
        key = f"{namespace}:{name}"
        async with redis.pipeline(transaction=False) as pipe:
            pipe.llen(key)
            pipe.lindex(key, 0)
            pipe.hlen(f"{key}.DQ.msgs")
            pipe.zcard(f"{key}.XQ")
            waiting, oldest_id, delayed, dead = await pipe.execute()
        age = 0.0
        if oldest_id is not None:
            body = await redis.hget(f"{key}.msgs", oldest_id)
            if body is not None:
                enqueued_ms = json.loads(body).get("message_timestamp", now * 1000)
                age = max(0.0, now - enqueued_ms / 1000)
        states.append(QueueState(name, int(waiting), int(delayed), int(dead), age))
    return states


async def read_database(pool: AsyncPool) -> StoredState:
    """Approvals and guardrail flags, for all tenants. These tables stay small (one row
    per proposed action or flag), so counting them at each scrape is cheap."""
    async with pool.connection() as conn:
        pending = await (
            await conn.execute(
                "SELECT tenant_id, count(*) AS n FROM pending_actions"
                " WHERE status = 'pending' GROUP BY tenant_id"
            )
        ).fetchall()
        buckets = ", ".join(
            f"count(*) FILTER (WHERE s <= {bound}) AS b{i}"
            for i, bound in enumerate(DECISION_BUCKETS)
        )
        decided = await (
            await conn.execute(
                f"""SELECT {buckets}, count(*) AS total, coalesce(sum(s), 0) AS total_seconds
                    FROM (SELECT extract(epoch FROM decided_at - created_at)::float8 AS s
                          FROM pending_actions WHERE decided_at IS NOT NULL) d"""
            )
        ).fetchone()
        flags = await (
            await conn.execute(
                "SELECT kind, source, count(*) AS n FROM guardrail_flags GROUP BY kind, source"
            )
        ).fetchall()
    assert decided is not None  # an aggregate always returns one row
    return StoredState(
        approvals_pending={row["tenant_id"]: row["n"] for row in pending},
        decision_bucket_counts=[decided[f"b{i}"] for i in range(len(DECISION_BUCKETS))]
        + [decided["total"]],
        decision_seconds_sum=float(decided["total_seconds"]),
        guardrail_flags={(row["kind"], row["source"]): row["n"] for row in flags},
    )


class StoredStateCollector(Collector):
    """Exposes the last `StoredState` read; the listener replaces it before each scrape."""

    def __init__(self) -> None:
        self.state = StoredState()

    def collect(self) -> Iterator[Metric]:
        state = self.state
        yield from _queue_families(state.queues)
        pending = GaugeMetricFamily(
            "chatops_approvals_pending", "Actions waiting for a decision.", labels=["tenant"]
        )
        for tenant_id, count in sorted(state.approvals_pending.items()):
            pending.add_metric([str(tenant_id)], count)
        yield pending
        if state.decision_bucket_counts:
            bounds = [*(f"{b:g}" for b in DECISION_BUCKETS), "+Inf"]
            yield HistogramMetricFamily(
                "chatops_approval_decision_seconds",
                "Time from an action being proposed to a person approving or rejecting it.",
                buckets=list(zip(bounds, state.decision_bucket_counts, strict=True)),
                sum_value=state.decision_seconds_sum,
            )
        flags = GaugeMetricFamily(
            # A gauge read from the table, though it only grows: a counter's `_total`
            # suffix would promise per-process counting this is not.
            "chatops_guardrail_flags",
            "Guardrail hits recorded (injection, toxicity, tool denied, budget).",
            labels=["kind", "source"],
        )
        for (kind, source), count in sorted(state.guardrail_flags.items()):
            flags.add_metric([kind, source], count)
        yield flags


def _queue_families(queues: Sequence[QueueState]) -> Iterator[Metric]:
    series = {
        "chatops_queue_messages": ("Messages waiting for a worker.", "waiting"),
        "chatops_queue_delayed_messages": ("Retries waiting out their backoff.", "delayed"),
        "chatops_queue_dead_messages": ("Dead-lettered messages.", "dead"),
        "chatops_queue_oldest_message_age_seconds": (
            "Age of the oldest message waiting.",
            "oldest_age_seconds",
        ),
    }
    for name, (doc, attribute) in series.items():
        family = GaugeMetricFamily(name, doc, labels=["queue"])
        for queue in queues:
            family.add_metric([queue.name], getattr(queue, attribute))
        yield family
