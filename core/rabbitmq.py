"""RabbitMQ as the broker (BROKER=rabbitmq), in a module of its own so that processes on
the default Redis broker do not import pika."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker


class NamespacedRabbitmqBroker(RabbitmqBroker):
    """RabbitMQ with QUEUE_NAMESPACE prefixed to every queue name ("chatops.agent"), as it
    prefixes every Redis key, so deployments (or test runs) can share one RabbitMQ vhost.

    Producers and actors keep using the plain names from `bot.queue.jobs`; the prefix is
    added where messages and declarations reach the broker, and is idempotent because
    Dramatiq passes already-prefixed names back in (retries, delayed messages).
    """

    def __init__(self, *, namespace: str, **kwargs: Any) -> None:
        self.namespace = namespace
        super().__init__(**kwargs)

    def queue_name(self, name: str) -> str:
        prefix = f"{self.namespace}."
        return name if name.startswith(prefix) else prefix + name

    def declare_queue(self, queue_name: str, *, ensure: bool = False) -> None:
        super().declare_queue(self.queue_name(queue_name), ensure=ensure)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        named = message.copy(queue_name=self.queue_name(message.queue_name))
        return super().enqueue(named, delay=delay)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return super().consume(self.queue_name(queue_name), prefetch, timeout)
