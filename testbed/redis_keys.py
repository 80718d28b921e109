"""Redis keys a test or benchmark owns: a prefix no other run shares, deleted when it is
done (CI and benchmarks share this machine's Redis with other runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from dramatiq.brokers.redis import RedisBroker

from testbed.markers import new_marker


@contextmanager
def own_namespace(redis_url: str, prefix: str) -> Iterator[str]:
    """A fresh key prefix starting with `prefix`; its keys are removed afterwards."""
    namespace = f"{prefix}-{new_marker(10)}"
    try:
        yield namespace
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


@contextmanager
def own_broker(redis_url: str, prefix: str) -> Iterator[RedisBroker]:
    """A Dramatiq broker under a namespace of its own, with no worker consuming it."""
    with own_namespace(redis_url, prefix) as namespace:
        broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
        try:
            yield broker
        finally:
            broker.close()
