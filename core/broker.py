"""The Dramatiq broker, built once per process by its entry point: Redis by default,
RabbitMQ with BROKER=rabbitmq. Everything else in the product is the same on either."""

from __future__ import annotations

from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from core.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.broker == "rabbitmq":
        # Imported here: pika (RabbitMQ's client) is a tenth of a second of every
        # process's start, spent for nothing on the default Redis broker.
        from core.rabbitmq import NamespacedRabbitmqBroker

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
    if isinstance(broker, RedisBroker):
        return set(names)
    from core.rabbitmq import NamespacedRabbitmqBroker  # see build_broker

    if isinstance(broker, NamespacedRabbitmqBroker):
        return {broker.queue_name(name) for name in names}
    return set(names)
