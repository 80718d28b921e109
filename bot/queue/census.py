"""Which requests and actions have a job the broker still holds.

The sweeps use it to tell a request that is waiting its turn (or being worked on, or
waiting out a retry's backoff) from one whose job is gone: Redis lost or flushed, a
restore, an enqueue that never happened. With Redis it reads the broker's message hashes,
which hold every message from its enqueue until its worker acknowledges it (queued,
delayed, in a worker's hands); RabbitMQ cannot be read without taking the messages, so
there the answer is "cannot tell" (None) and the sweeps fall back to a longer bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker

from bot.queue.jobs import EXECUTE_ACTION, REQUEST_FAILED, REVIEW_EVENT, RUN_REQUEST
from core.queues import AGENT_QUEUE, REVIEW_QUEUE

log = structlog.get_logger(__name__)

SCAN_BATCH = 500  # hash entries read per round trip


@dataclass(frozen=True)
class QueuedJobs:
    requests: frozenset[int]  # inbound request ids with a run, review or apology job
    actions: frozenset[int]  # pending action ids with an execution job


def readable(broker: dramatiq.Broker) -> bool:
    """Whether `queued_jobs` can say what this broker holds."""
    return isinstance(broker, RedisBroker)


def queued_jobs(broker: dramatiq.Broker) -> QueuedJobs | None:
    """What the broker holds now, or None when this broker cannot be read. Reads every
    waiting message once: call it only when there is something to check."""
    if not isinstance(broker, RedisBroker):
        return None
    client: Any = broker.client
    requests: set[int] = set()
    actions: set[int] = set()
    # The delay queues first: a message moving from one to its queue is seen either way.
    for queue in (f"{AGENT_QUEUE}.DQ", f"{REVIEW_QUEUE}.DQ", AGENT_QUEUE, REVIEW_QUEUE):
        key = f"{broker.namespace}:{queue}.msgs"
        for actor, subject in _ids(client.hscan_iter(key, count=SCAN_BATCH)):
            if actor == EXECUTE_ACTION:
                actions.add(subject)
            else:
                requests.add(subject)
    return QueuedJobs(frozenset(requests), frozenset(actions))


def _ids(entries: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[str, int]]:
    for _, data in entries:
        try:
            message = dramatiq.Message.decode(data)
        except Exception:
            log.warning("census.unreadable_message")
            continue
        args = message.args
        if message.actor_name in (RUN_REQUEST, REVIEW_EVENT, EXECUTE_ACTION) and args:
            yield message.actor_name, int(args[0])
        elif message.actor_name == REQUEST_FAILED and args:
            # The apology job carries the failed run's whole message.
            yield message.actor_name, int(args[0]["args"][0])
