"""Queue depth, age and dead letters are read from the Redis broker's own keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dramatiq
import pytest
import redis
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker

from bot.observability.stored_state import QueueState, read_queues
from testbed.markers import new_marker


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"chatops-depth-test-{new_marker(10)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)


def message(queue: str, enqueued_ms: int) -> dramatiq.Message[object]:
    return dramatiq.Message(
        queue_name=queue,
        actor_name="run_request",
        args=(1,),
        kwargs={},
        options={},
        message_timestamp=enqueued_ms,
    )


def test_queue_state_counts_waiting_delayed_and_dead_jobs(redis_url: str, namespace: str) -> None:
    """Waiting, retrying and dead jobs are counted per queue, and the oldest waiting one's
    age is reported."""
    broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    now_ms = int(time.time() * 1000)
    broker.enqueue(message("agent", now_ms - 40_000))  # waiting 40 s
    broker.enqueue(message("agent", now_ms - 5_000))
    broker.enqueue(message("agent", now_ms), delay=60_000)  # a retry in backoff
    broker.enqueue(message("review", now_ms))
    consumer = broker.consume("review", timeout=1000)
    consumer.nack(next(consumer))  # dead
    consumer.close()
    broker.close()

    async def read() -> list[QueueState]:
        client = aioredis.from_url(redis_url)
        try:
            return await read_queues(client, namespace, ("agent", "review"), now=now_ms / 1000)
        finally:
            await client.aclose()

    agent, review = asyncio.run(read())
    assert (agent.waiting, agent.delayed, agent.dead) == (2, 1, 0)
    assert agent.oldest_age_seconds == pytest.approx(40.0, abs=0.01)
    assert (review.waiting, review.delayed, review.dead) == (0, 0, 1)
    assert review.oldest_age_seconds == 0.0
