"""The Dramatiq broker on Redis, built once per process by its entry point."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bot.settings import Settings


def build_broker(settings: Settings) -> RedisBroker:
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
