"""The Dramatiq broker, built once per process by its entry point: Redis by default,
RabbitMQ with BROKER=rabbitmq. Everything else in the product is the same on either."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis.commands.core import Script

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


# One batch at a time per process: the broker's dispatch script is swapped for the batch.
_BATCHING = threading.Lock()


@contextmanager
def one_round_trip(broker: dramatiq.Broker) -> Iterator[None]:
    """Messages `broker.enqueue`d inside the block reach Redis together when it ends, in
    one pipeline (not a round trip each); raises there if Redis refused them.

    Dramatiq's RedisBroker sends each message by calling its `dispatch` Lua script (a
    redis-py Script, public in `broker.scripts`); for the block, that script is called
    with the pipeline as its client, which redis-py supports. Every middleware hook
    still runs per message. On any other broker, or a dramatiq whose script is not a
    redis-py Script, messages are sent one by one as before
    (tests/core/test_broker_batch.py notices if batching stops working). Another thread
    enqueueing on the same broker meanwhile would join the batch: use it where one
    thread does the enqueueing (the SMTP listener's queuer)."""
    if not isinstance(broker, RedisBroker) or not isinstance(
        broker.scripts.get("dispatch"), Script
    ):
        yield
        return
    script = broker.scripts["dispatch"]
    with _BATCHING, broker.client.pipeline(transaction=False) as pipe:
        broker.scripts["dispatch"] = functools.partial(script, client=pipe)
        try:
            yield
        finally:
            broker.scripts["dispatch"] = script
            pipe.execute()  # what was enqueued before an error too, as one by one would
