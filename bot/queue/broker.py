"""The Dramatiq broker, built once per process by its entry point: Redis by default,
RabbitMQ with BROKER=rabbitmq. Everything else in the product is the same on either."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from bot.settings import Settings


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


def build_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.broker == "rabbitmq":
        broker = NamespacedRabbitmqBroker(
            namespace=settings.queue_namespace,
            url=settings.rabbitmq_url,
            # A publish the broker did not confirm raises, so the listener leaves the
            # request 'received' for its sweeper instead of believing it queued.
            confirm_delivery=True,
        )
    else:
        broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq is unannotated
            url=settings.redis_url,
            namespace=settings.queue_namespace,
            heartbeat_timeout=int(settings.worker_heartbeat_timeout_seconds * 1000),
            # Dramatiq's default (1 in 1000 commands) can leave a dead worker's job waiting
            # for many minutes; chat work wants it back soon after the heartbeat lapses.
            maintenance_chance=settings.queue_maintenance_per_million,
        )
    # Dramatiq's actors look the broker up globally; this is the one global we keep,
    # set here and nowhere else.
    dramatiq.set_broker(broker)
    return broker


def consumed_queues(broker: dramatiq.Broker, names: Iterable[str]) -> set[str]:
    """The names a Worker must be given to consume these queues on this broker."""
    if isinstance(broker, NamespacedRabbitmqBroker):
        return {broker.queue_name(name) for name in names}
    return set(names)
